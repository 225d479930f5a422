"""A run's place in its output folder: the lock, the journal (new, resumed, or new after the
unfinished run was closed as abandoned), the run's folder in ``history/``, the copy of an
input that lies in the output folder, and, once the run is over, the journal moved into its
folder and the oldest runs pruned (``keep_runs``)."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from types import TracebackType

from customer_import.config import JobConfig, SourceConfig, is_url
from customer_import.outputs.abandoned import close_abandoned
from customer_import.outputs.files import SUMMARY_NAME
from customer_import.outputs.finish import RunOutputs
from customer_import.record.history import History
from customer_import.record.journal import Journal, JournalState
from customer_import.record.locks import FolderLock
from customer_import.record.opening import Opened, lock_folder, open_run_journal, run_fingerprint
from customer_import.run.options import RunOptions
from customer_import.run.settings import Settings, run_identity, source_flags, unfinished_policy
from customer_import.source import Source, open_source

log = logging.getLogger("customer_import")


@dataclass(frozen=True, slots=True)
class Refeed:
    """A fed back rejects file: the run that wrote it, and that run's input file name."""

    of: str | None
    first_file: str


class RunFolder:
    """From the first look at the output folder to the end of the run; the folder is locked
    from then on (early, when the input lies in it: its copy is made under the lock)."""

    def __init__(self, out_dir: Path, keep_runs: int) -> None:
        self.history = History(out_dir)
        self.keep_runs = keep_runs
        self.opened: Opened | None = None
        self._lock: FolderLock | None = None
        self._fresh: str | None = None  # a folder made for a new run that may not start

    @property
    def journal(self) -> Journal:
        assert self.opened is not None
        return self.opened.journal

    @property
    def run_id(self) -> str:
        assert self.opened is not None
        return self.opened.run_id

    def open_input(self, config: SourceConfig, given: Path | str, options: RunOptions) -> Source:
        """The input opened: the file given, or the copy ``input_copy`` says to read instead;
        ``--encoding``/``--delimiter`` win over what the tool's own rejects file is known to be."""
        copy = self.input_copy(given, options.input_copy)
        pinned = frozenset(source_flags(options))
        return open_source(config, given, copy, pinned=pinned)

    def input_copy(self, given: Path | str, copied: Path | None) -> Path | None:
        """What to read instead of ``given``: ``copied`` (made by whoever calls), or, for a file
        in the output folder, its copy in the run's folder: the unfinished run's own when this
        is its input still (or the file it wrote over it), else a new one."""
        if copied is not None or is_url(given) or not self.history.holds(Path(given)):
            return copied
        if not Path(given).is_file():
            return None  # reading it says what is wrong
        self._locked()
        unfinished = self.history.unfinished()
        kept = self.history.input_kept(unfinished, Path(given)) if unfinished else None
        if kept is not None:
            return kept
        self._fresh = self.history.new_run()
        return self.history.keep_input(self._fresh, Path(given))

    def open(self, job: JobConfig, options: RunOptions, input_digest: str) -> Opened:
        """The run's journal; the unfinished run closed first when it is not resumed."""
        self._locked()
        fingerprint = run_fingerprint(job, dry_run=options.dry_run, shard=options.shard)
        policy = unfinished_policy(job, options)
        self.opened = open_run_journal(
            self.history, input_digest, fingerprint, policy, self._new_run
        )
        gone = self.opened.abandoned
        if gone is not None:
            close_abandoned(self.history.folder(gone.run_id), gone.run_id, gone.reason, gone.by)
        elif not self.opened.resumed:
            log.info("run %s starts", self.run_id)
        return self.opened

    def outputs(
        self, job: JobConfig, settings: Settings, options: RunOptions, source: Source
    ) -> RunOutputs:
        """The outputs stage, writing into the run's folder."""
        refeed = self.refeed(settings.input, source.own_rejects) or Refeed(None, "")
        run = run_identity(job, settings, options, source, self.run_id, refeed.of)
        drop = job.source.drop_columns
        return RunOutputs(self.history, self.journal, source, drop, run, refeed.first_file)

    def refeed(self, given: Path | str, own_rejects: bool) -> Refeed | None:
        """For the tool's own rejects file fed back: the run it came from, found from the
        summary.json beside it (kept in the journal for a resume, which finds its own there)."""
        if not own_rejects:
            return None
        kept = self.journal.get_meta("refeed")
        if kept is None:
            kept = json.dumps(_refeed_of(given))
            self.journal.set_meta(refeed=kept)
        of, first_file = json.loads(kept)
        return Refeed(of, first_file)

    def _new_run(self, started: datetime | None) -> str:
        if started is None and self._fresh is not None:
            run_id, self._fresh = self._fresh, None
            return run_id
        return self.history.new_run(started)

    def _locked(self) -> None:
        if self._lock is None:
            self._lock = lock_folder(self.history.out_dir)

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.opened is not None:
                self._close_journal()
        finally:
            if self._fresh is not None:  # made for a run that did not start
                shutil.rmtree(self.history.folder(self._fresh), ignore_errors=True)
            if self._lock is not None:
                self._lock.release()

    def _close_journal(self) -> None:
        """An ended run's journal moves into its folder; an unfinished one stays on top, for
        a resume to find; then the oldest runs beyond ``keep_runs`` go."""
        state = self.journal.get_meta("state")
        self.journal.close()
        if state != JournalState.RUNNING:
            self.history.adopt_journal(self.run_id)
        self.history.prune(self.keep_runs, spare={self.run_id})


def _refeed_of(given: Path | str) -> tuple[str | None, str]:
    """(run id, input file name) from the summary.json beside a rejects file; (None, "")
    when there is none to read."""
    if is_url(given):
        return None, ""
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        summary = json.loads((Path(given).parent / SUMMARY_NAME).read_text(encoding="utf-8"))
        first = summary.get("input") or {}
        return summary.get("run_id"), PurePosixPath(str(first.get("path") or "")).name
    return None, ""
