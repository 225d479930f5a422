"""Which journal a run gets: a new one, the unfinished one to resume, or a refusal; the output
folder locked from the start to the end of the run."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path

from customer_import.config import JobConfig
from customer_import.errors import ConfigError
from customer_import.record.journal import JOURNAL_NAME, Journal, JournalState, now
from customer_import.record.locks import FolderLock

log = logging.getLogger("customer_import")


def run_fingerprint(job: JobConfig, *, dry_run: bool, shard: object) -> str:
    """What must not change between a run and its resume (not the URL: a 404 is fixed there)."""
    relevant = job.model_dump_json(include={"name", "source", "mapping", "duplicates", "mode"})
    return hashlib.sha256(f"{relevant}|dry_run={dry_run}|shard={shard}".encode()).hexdigest()


def open_journal(out_dir: Path) -> Journal:
    """The output folder's journal, locked for this run; ConfigError when the folder cannot be
    written to, or another run holds it."""
    try:
        lock = FolderLock(out_dir, "the output folder").acquire()
    except OSError as exc:
        raise _unwritable(out_dir, exc) from exc
    try:
        journal = _journal_in(out_dir)
    except BaseException:
        lock.release()
        raise
    journal.lock = lock
    return journal


def _journal_in(out_dir: Path) -> Journal:
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


def remove_journal(out_dir: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (out_dir / f"{JOURNAL_NAME}{suffix}").unlink(missing_ok=True)


def open_run_journal(
    out_dir: Path, input_digest: str, fingerprint: str, resume: bool, restart: bool
) -> Journal:
    """The run's journal, the folder locked: a new one, the unfinished one to resume, or a
    refusal.

    A folder holding an unfinished run is never taken over silently: without --resume or
    --restart that is a ConfigError. A completed (or guarded) run is replaced.
    """
    journal = open_journal(out_dir)
    try:
        return _for_this_run(journal, input_digest, fingerprint, resume=resume, restart=restart)
    except BaseException:
        journal.close()
        raise


def _for_this_run(
    journal: Journal, input_digest: str, fingerprint: str, *, resume: bool, restart: bool
) -> Journal:
    out_dir = journal.path.parent
    state = journal.get_meta("state")
    if state == JournalState.RUNNING and not restart:
        if not resume:
            raise ConfigError(
                f"{out_dir} holds an unfinished run: pass --resume to continue it "
                "or --restart to start over"
            )
        _check_resumable(journal, input_digest, fingerprint)
        log.info("resuming: %d records already have an outcome", journal.count_done())
        return journal
    if state is not None:  # replaced, the folder locked all along
        lock, journal.lock = journal.lock, None
        journal.close()
        remove_journal(out_dir)
        try:
            journal = _journal_in(out_dir)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        journal.lock = lock
    journal.set_meta(
        state=JournalState.RUNNING, input=input_digest, job=fingerprint, started_at=now()
    )
    return journal


def _check_resumable(journal: Journal, input_digest: str, fingerprint: str) -> None:
    if journal.get_meta("input") != input_digest:
        raise ConfigError(
            "--resume refused: the input file changed since the run started; use --restart"
        )
    if journal.get_meta("job") != fingerprint:
        raise ConfigError(
            "--resume refused: the job file (source, mapping or duplicates) changed since the "
            "run started; use --restart"
        )
