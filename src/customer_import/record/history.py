"""The output folder's history: every run's files kept in ``history/<run id>/``, the latest
run's also at the top of the folder.

    OUT/results.csv, rejects.csv, summary.json...   the latest run's (copies, ``publish``)
    OUT/journal.sqlite                              the unfinished run's journal, if any
    OUT/history/20261204T021500Z/                   one run: its files, written there first;
        input/rejects.csv                           its input, when that lay in OUT
        journal.sqlite                              once the run has ended (or was abandoned)
        replaced/summary.json                       top-level files it found edited by hand

A run id is the UTC time the run started (``20261204T021500Z``; ``-2``, ``-3``... for a second
run in the same second). No run ever changes another run's folder, except to close an
abandoned run in its own (``outputs.abandoned``) and to remove the oldest beyond ``keep_runs``.
A top-level file is replaced only when it is still the copy the last run published; one that
was edited (or written by a version before history) is first moved into the new run's
``replaced/``, so no hand edit is ever lost.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from customer_import.durable import replaced_text
from customer_import.errors import StorageFault

log = logging.getLogger("customer_import")

HISTORY: Final = "history"
INPUT_FOLDER: Final = "input"
REPLACED_FOLDER: Final = "replaced"
JOURNAL_FILES: Final = ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm")
PUBLISHED: Final = ".published.json"
"""Top-level: which run the top-level files are copies of, and each file's size and mtime."""
KNOWN_OUTPUTS: Final = ("results.csv", "rejects.csv", "summary.json", "missing.csv", "pending.csv")
"""Names a version before history wrote at the top (protected when no manifest says more)."""
_META: Final = ("state", "run_id")
_RUN_ID: Final = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?$")


def run_id_at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _order(run_id: str) -> tuple[str, int]:
    match = _RUN_ID.match(run_id)
    assert match is not None
    return match.group(1), int(match.group(2) or 1)


class History:
    """``OUT/history``: run folders, and the top-level copies of the latest run's files."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.root = out_dir / HISTORY

    def folder(self, run_id: str) -> Path:
        return self.root / run_id

    def new_run(self, started: datetime | None = None) -> str:
        """A new run's id, its folder made (an id is never given twice: ``mkdir`` says so)."""
        stamp = run_id_at(started or datetime.now(UTC))
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for n in range(1, 10_000):
            run_id = stamp if n == 1 else f"{stamp}-{n}"
            try:
                self.folder(run_id).mkdir(mode=0o700)
            except FileExistsError:
                continue
            return run_id
        raise FileExistsError(f"{self.root}: no free run id for {stamp}")

    def runs(self) -> list[str]:
        """Run ids, oldest first."""
        if not self.root.is_dir():
            return []
        ids = [p.name for p in self.root.iterdir() if p.is_dir() and _RUN_ID.match(p.name)]
        return sorted(ids, key=_order)

    def prune(self, keep: int, *, spare: Iterable[str]) -> list[str]:
        """Remove the oldest run folders beyond ``keep``, never one in ``spare`` nor the
        unfinished run's; their ids."""
        runs, spared = self.runs(), {*spare, self.unfinished()}
        removable = [r for r in runs if r not in spared]
        excess = max(0, len(runs) - keep)
        removed = removable[:excess]
        for run_id in removed:
            shutil.rmtree(self.folder(run_id), ignore_errors=True)
        if removed:
            log.info("history: removed the %d oldest runs (keep_runs = %d)", len(removed), keep)
        return removed

    def keep_input(self, run_id: str, given: Path, name: str | None = None) -> Path:
        """A copy of an input that lies in the output folder, in the run's own folder: the run
        reads it, and the file itself may then be replaced (a fed back rejects.csv)."""
        folder = self.folder(run_id) / INPUT_FOLDER
        folder.mkdir(exist_ok=True, mode=0o700)
        copy = folder / (name or given.name)
        shutil.copy2(given, copy)
        return copy

    def input_for(self, run_id: str, given: Path) -> Path:
        """``keep_input`` for a run that has no journal of its own (``--workers``, whose
        shards keep theirs): what the unfinished run at the top read, when ``given`` is that
        still (or that run's own output), else ``given``, copied into ``run_id``'s folder."""
        unfinished = self.unfinished_on_top()
        kept = self.input_kept(unfinished, given) if unfinished else None
        return self.keep_input(run_id, kept or given, given.name)

    def unfinished(self) -> str | None:
        """The run id of the unfinished run, whose journal is at the top, if any."""
        path = self.out_dir / JOURNAL_FILES[0]
        if not path.is_file():
            return None
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN (?, ?)", _META))
        except sqlite3.Error:
            return None
        return meta.get("run_id") if meta.get("state") == "running" else None

    def unfinished_on_top(self) -> str | None:
        """The run whose files are at the top, when it did not complete (its summary says)."""
        try:
            summary = json.loads((self.out_dir / "summary.json").read_text(encoding="utf-8"))
            status, run_id = summary.get("status"), summary.get("run_id")
        except (OSError, ValueError, AttributeError):
            return None
        return run_id if status in ("aborted", "interrupted") else None

    def input_kept(self, run_id: str, given: Path) -> Path | None:
        """The copy ``run_id`` read, when ``given`` is still what it read, or is the file of the
        same name that the run itself wrote at the top (a resume of a fed back rejects.csv)."""
        copy = self.folder(run_id) / INPUT_FOLDER / given.name
        if not copy.is_file() or not given.is_file():
            return None
        if _same_bytes(given, copy):
            return copy
        written = self.folder(run_id) / given.name
        on_top = given.parent.resolve() == self.out_dir.resolve()
        return copy if on_top and written.is_file() and _same_bytes(given, written) else None

    def holds(self, path: Path) -> bool:
        """Whether ``path`` lies in the output folder (a file a run may replace or prune)."""
        try:
            path.resolve().relative_to(self.out_dir.resolve())
        except ValueError:
            return False
        return True

    def adopt_journal(self, run_id: str) -> None:
        """Move the top-level journal into the run's folder (the run has ended)."""
        folder = self.folder(run_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in JOURNAL_FILES:
            with contextlib.suppress(FileNotFoundError):
                (self.out_dir / name).replace(folder / name)

    def adopt_top_level(self, run_id: str) -> None:
        """A run of a version before history: the files it left at the top are copied into the
        folder given to it, and count as published by it (so replacing them loses nothing)."""
        if (self.out_dir / PUBLISHED).exists():
            return
        signatures = {}
        for name in KNOWN_OUTPUTS:
            top = self.out_dir / name
            if top.is_file():
                shutil.copy2(top, self.folder(run_id) / name)
                stat = top.stat()
                signatures[name] = [stat.st_size, stat.st_mtime_ns]
        _write_json(self.out_dir / PUBLISHED, {"run_id": run_id, "files": signatures})

    def published(self) -> tuple[str | None, dict[str, list[int]]]:
        """The run the top-level files are copies of, and their (size, mtime) when copied."""
        try:
            manifest = json.loads((self.out_dir / PUBLISHED).read_text(encoding="utf-8"))
            return manifest.get("run_id"), dict(manifest.get("files") or {})
        except (OSError, ValueError, AttributeError):
            return None, {}

    def publish(self, run_id: str) -> None:
        """The run's files copied to the top of the output folder, each by a rename; the
        earlier run's that this one did not write removed. A top-level file that is not the
        copy last published (edited by hand) is moved into this run's ``replaced/`` first."""
        folder = self.folder(run_id)
        names = sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file() and p.name not in JOURNAL_FILES and not p.name.startswith(".")
        )
        _, files = self.published()
        touched = set(names) | set(files) | (set() if files else set(KNOWN_OUTPUTS))
        for name in sorted(touched):
            self._set_aside_if_edited(name, files.get(name), folder)
        signatures = {name: _copied(folder / name, self.out_dir / name) for name in names}
        for name in set(files) - set(names):
            (self.out_dir / name).unlink(missing_ok=True)
        _write_json(self.out_dir / PUBLISHED, {"run_id": run_id, "files": signatures})

    def _set_aside_if_edited(self, name: str, signature: list[int] | None, folder: Path) -> None:
        top = self.out_dir / name
        try:
            stat = top.stat()
        except FileNotFoundError:
            return
        if signature is not None and [stat.st_size, stat.st_mtime_ns] == signature:
            return  # the copy last published: the run's own folder has the original
        kept = folder / INPUT_FOLDER / name  # a fed back file: this run keeps it already
        if kept.is_file() and _same_bytes(top, kept):
            return
        replaced = folder / REPLACED_FOLDER
        replaced.mkdir(exist_ok=True, mode=0o700)
        top.replace(replaced / name)
        log.warning("%s was edited since it was written: kept as %s", top, replaced / name)


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _copied(source: Path, target: Path) -> list[int]:
    """``source`` copied to ``target`` by way of a temporary name; the copy's size, mtime.
    StorageFault when it cannot be written: the file before it stays as it was."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        shutil.copy2(source, tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(target)
    except OSError as exc:
        raise StorageFault(target, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)
    stat = target.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _write_json(path: Path, value: object) -> None:
    with replaced_text(path) as handle:
        json.dump(value, handle)
