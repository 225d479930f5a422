"""Which journal a run gets: a new one, the unfinished one to resume, or a refusal; an
unfinished run that is not resumed is closed as abandoned in its history folder.

The journal of the unfinished run (or of the run going on) is ``OUT/journal.sqlite``, where
``--resume`` finds it; once a run has ended it moves into its history folder
(``History.adopt_journal``), so a folder holding no unfinished run has no top-level journal.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, NamedTuple

from customer_import.config import JobConfig, OnUnfinished
from customer_import.errors import ConfigError
from customer_import.record.history import History
from customer_import.record.journal import JOURNAL_NAME, Journal, JournalState, now
from customer_import.record.locks import FolderLock

log = logging.getLogger("customer_import")


class Fingerprint(NamedTuple):
    """What must not change between a run and its resume: not the URL (a 404 is fixed there),
    not ``batch_size`` (records are numbered and judged alike in batches of any size)."""

    now: str
    earlier: str
    """As versions before this one wrote it, ``batch_size`` in it (10,000, its default then,
    unless the job file says): their unfinished runs are resumed too."""


_RELEVANT: Final = {"name", "source", "mapping", "duplicates", "mode"}
_EARLIER_BATCH_SIZE: Final = 10_000


def run_fingerprint(job: JobConfig, *, dry_run: bool, shard: object) -> Fingerprint:
    now = job.model_dump_json(include=_RELEVANT, exclude={"source": {"batch_size"}})
    size = job.source.batch_size if "batch_size" in job.source.model_fields_set else None
    source = job.source.model_copy(update={"batch_size": size or _EARLIER_BATCH_SIZE})
    earlier = job.model_copy(update={"source": source}).model_dump_json(include=_RELEVANT)
    return Fingerprint(*(_hashed(f"{r}|dry_run={dry_run}|shard={shard}") for r in (now, earlier)))


def _hashed(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lock_folder(out_dir: Path) -> FolderLock:
    """The output folder locked for this run; ConfigError when it cannot be written to, or
    another run holds it."""
    try:
        return FolderLock(out_dir, "the output folder").acquire()
    except OSError as exc:
        raise _unwritable(out_dir, exc) from exc


def open_journal(out_dir: Path) -> Journal:
    """The output folder's journal, locked for this run (``Journal.close`` unlocks it)."""
    lock = lock_folder(out_dir)
    try:
        journal = journal_in(out_dir)
    except BaseException:
        lock.release()
        raise
    journal.lock = lock
    return journal


def journal_in(out_dir: Path) -> Journal:
    """The top-level journal of a folder this process has locked."""
    try:
        path = out_dir / JOURNAL_NAME
        path.touch(mode=0o600, exist_ok=True)
        journal = Journal(path)
        journal.set_meta(opened_at=now())  # a folder that lets no file be written fails here
    except (OSError, sqlite3.Error) as exc:
        raise _unwritable(out_dir, exc) from exc
    return journal


def _unwritable(out_dir: Path, exc: OSError | sqlite3.Error) -> ConfigError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ConfigError(
        f"cannot write to the output folder {out_dir}: {reason} (give --out, or [output] dir, "
        "a folder this user can write to)"
    )


@dataclass(frozen=True, slots=True)
class Abandoned:
    """An unfinished run closed rather than resumed: its journal is now in its folder."""

    run_id: str
    reason: str
    by: str
    """The run that abandoned it."""


@dataclass(frozen=True, slots=True)
class Opened:
    journal: Journal
    run_id: str
    resumed: bool = False
    abandoned: Abandoned | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """What to do with an unfinished run, and who said so (for messages)."""

    on_unfinished: OnUnfinished
    said_by: str
    """ "--resume", "--restart" or 'on_unfinished = "auto"'..."""
    dry_run: bool = False


def open_run_journal(
    history: History,
    input_digest: str,
    fingerprint: Fingerprint,
    policy: Policy,
    new_run: Callable[[datetime | None], str],
) -> Opened:
    """The run's journal in a folder this process has locked: a new one, the unfinished one
    to resume, or a ConfigError saying why neither. ``new_run`` gives a new run's id."""
    journal = journal_in(history.out_dir)
    try:
        return _for_this_run(journal, history, input_digest, fingerprint, policy, new_run)
    except BaseException:
        journal.close()
        raise


def _for_this_run(
    journal: Journal,
    history: History,
    input_digest: str,
    fingerprint: Fingerprint,
    policy: Policy,
    new_run: Callable[[datetime | None], str],
) -> Opened:
    state = journal.get_meta("state")
    abandoned = None
    if state == JournalState.RUNNING:
        why = _abandon_why(journal, input_digest, fingerprint, policy)
        run_id = _run_id_of(journal, history, new_run)
        if why is None:
            log.info(
                "resuming run %s: %d records already have an outcome", run_id, journal.count_done()
            )
            return Opened(journal, run_id, resumed=True)
        new_id = new_run(None)
        journal.set_meta(state=JournalState.ABANDONED, abandoned_by=new_id, abandoned_at=now())
        abandoned = Abandoned(run_id, why, new_id)
        journal = _moved(journal, history, run_id)
    elif state is not None:  # an ended run an earlier version left at the top
        journal = _moved(journal, history, _run_id_of(journal, history, new_run))
    run_id = abandoned.by if abandoned else new_run(None)
    journal.set_meta(
        state=JournalState.RUNNING,
        input=input_digest,
        job=fingerprint.now,
        started_at=now(),
        run_id=run_id,
        dry_run=str(int(policy.dry_run)),
    )
    return Opened(journal, run_id, abandoned=abandoned)


def _moved(journal: Journal, history: History, run_id: str) -> Journal:
    """The journal closed and moved into its run's folder; a new one in its place."""
    journal.close()
    history.adopt_journal(run_id)
    return journal_in(history.out_dir)


def _run_id_of(
    journal: Journal, history: History, new_run: Callable[[datetime | None], str]
) -> str:
    """The journal's run id; a run of a version before history gets one (from the time it
    started) and a folder holding the top-level files it wrote."""
    run_id = journal.get_meta("run_id")
    if run_id is None:
        started = journal.get_meta("started_at")
        run_id = new_run(datetime.fromisoformat(started) if started else datetime.now(UTC))
        history.adopt_top_level(run_id)
        journal.set_meta(run_id=run_id)
    return run_id


def _abandon_why(
    journal: Journal, input_digest: str, fingerprint: Fingerprint, policy: Policy
) -> str | None:
    """None: resume the unfinished run; else why it is abandoned. ConfigError: neither."""
    out_dir = journal.path.parent
    changed = _changed(journal, input_digest, fingerprint)
    match policy.on_unfinished:
        case "refuse":
            raise ConfigError(
                f"{out_dir} holds an unfinished run: pass --resume to continue it or "
                f"--restart to close it and start over ({policy.said_by})"
            )
        case "resume":
            if changed is not None:
                raise ConfigError(
                    f"{policy.said_by} refused: {changed} since the run started; use --restart"
                )
            return None
        case "restart":
            return f"abandoned by {policy.said_by}"
    if changed is None:
        return None
    if policy.dry_run and journal.get_meta("dry_run") != "1":
        raise ConfigError(
            f"{out_dir} holds an unfinished run, which a dry run does not abandon: give the "
            "dry run another --out, or pass --restart to close that run"
        )
    return changed


def _changed(journal: Journal, input_digest: str, fingerprint: Fingerprint) -> str | None:
    if journal.get_meta("input") != input_digest:
        return "the input file changed"
    if journal.get_meta("job") not in fingerprint:
        return "the job file (source, mapping or duplicates) or --dry-run/--shard changed"
    return None
