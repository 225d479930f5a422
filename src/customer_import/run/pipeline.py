"""run_job(): the only module that knows the order of the stages.

settings, credentials -> the output folder -> open the source -> plan the mapping -> the
journal (new, resumed, or after the unfinished run was abandoned; or refused) -> incremental state
-> pre-pass: count the records, find the repeated externalIds
-> batches: read (one thread), map and validate (three threads), a few batches ahead of the
   sender -> send (a dry run records them as valid)
-> repeated ids decided and sent -> deactivations (incremental sync)
-> outputs (reject sources, the files), on every exit path: in the run's folder, copied to the top
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, nullcontext
from functools import partial

import polars as pl

from customer_import.config import Credentials, JobConfig, read_credentials
from customer_import.contracts import (
    Batch,
    HeldRecord,
    PreparedBatch,
    Progress,
    RunReport,
    RunStatus,
    SendItem,
)
from customer_import.errors import Guard, RunAborted
from customer_import.outputs.summary import RunFacts
from customer_import.record.incremental import IncrementalSync, incremental_sync
from customer_import.record.recorder import Recorder
from customer_import.run.ending import ending_of, whole_file_check
from customer_import.run.folder import RunFolder
from customer_import.run.options import RunOptions
from customer_import.run.process import Stopping, handlers_set, lean_gc, loop_signals, run_async
from customer_import.run.progress import ProgressReporter
from customer_import.run.settings import Settings, resolve_settings, with_source_flags
from customer_import.send.setup import open_sender
from customer_import.send.stats import SendStats
from customer_import.send.timeline import Timeline
from customer_import.source import Source
from customer_import.threads import OrderedMap, prefetch
from customer_import.transform.duplicates import decide
from customer_import.transform.fieldstats import FieldStats
from customer_import.transform.frames import send_items
from customer_import.transform.guard import InvalidRatioGuard, guard_empty
from customer_import.transform.mapping import MappingPlan
from customer_import.transform.planning import plan_job
from customer_import.transform.prepare import (
    FIRST_BATCH,
    BatchPreparer,
    Prepared,
    id_columns,
    pre_pass,
)
from customer_import.transform.sharding import sharded

log = logging.getLogger("customer_import")


def run_job(job: JobConfig, options: RunOptions | None = None) -> RunReport:
    """Run one job end to end in this process; raises ConfigError/InputError before anything
    is sent. Its files are written however the run ends."""
    options = options or RunOptions()
    environ = os.environ if options.environ is None else options.environ
    job = with_source_flags(job, options)
    settings = resolve_settings(job, options, environ)
    credentials = None if options.dry_run else read_credentials(job.api, environ)
    folder = RunFolder(settings.out_dir, job.output.keep_runs)  # locked, journal, history
    with folder, ExitStack() as held:  # the lock of the state, too
        source = held.enter_context(folder.open_input(job.source, settings.input, options))
        plan = plan_job(job, source)
        folder.open(job, options, source.digest)  # a remote object's is taken as it is copied
        scratch = settings.out_dir if options.dry_run else None  # a dry run writes no state
        sync = incremental_sync(job, settings.base_url, environ, options.mode or job.mode, scratch)
        if sync is not None:
            held.enter_context(sync)
        run = _Run(job, settings, options, source, plan, folder, sync, credentials)
        # Once the run has ended, the handlers from before it are put back.
        with lean_gc(), handlers_set(None) if options.handle_signals else nullcontext():
            return run.execute()


class _Run:
    """One execution: the stages in order, and what they share."""

    def __init__(
        self,
        job: JobConfig,
        settings: Settings,
        options: RunOptions,
        source: Source,
        plan: MappingPlan,
        folder: RunFolder,
        sync: IncrementalSync | None,
        credentials: Credentials | None,
    ) -> None:
        self.job, self.settings, self.options = job, settings, options
        self.source, self.plan, self.journal, self.sync = source, plan, folder.journal, sync
        self.credentials = credentials
        self.outputs = folder.outputs(job, settings, options, source)
        self.recorder = Recorder(self.journal, group=settings.concurrency)
        self.progress = ProgressReporter(options.progress)
        self.stats = SendStats()
        self.timeline = Timeline()
        self.preparer: BatchPreparer | None = None
        self.prepared: OrderedMap[Batch, Prepared] | None = None
        self.stopping = Stopping()
        self.total = 0

    def execute(self) -> RunReport:
        started = time.monotonic()
        try:
            run_async(self._stages())
        except RunAborted as exc:
            return self._finish(exc, started)
        except BaseException as exc:
            self._finish(exc, started)  # a bug: the files still account for every record
            raise
        return self._finish(None, started)

    def _finish(self, failure: BaseException | None, started: float) -> RunReport:
        """The outputs stage, on every exit path."""
        if self.prepared is not None:  # a read may be under way: it ends before the file closes
            self.prepared.close()
        failure = failure or self.source.changed()  # what was sent came from one file
        ending = ending_of(failure, self.job.api, self.recorder)
        self.journal.flush()
        ending = whole_file_check(ending, self.total, self.journal)
        completed = ending.status is RunStatus.COMPLETED
        guarded = isinstance(failure, Guard)  # nothing was sent: nothing to resume
        if self.sync is not None and not guarded:
            self.sync.finish(self.journal, completed=completed)
        self.journal.end(completed=completed, guarded=guarded)
        facts = RunFacts(
            ending,
            self.total,
            self.recorder.this_run,
            time.monotonic() - started,
            self.stats.facts(),
            (self.preparer.warnings() if self.preparer else [])
            + (self.sync.warnings if self.sync else []),
            self.sync.facts(self.journal.count_deactivated()) if self.sync is not None else None,
            timeline=self.timeline.points,
            field_stats=self.preparer.stats if self.preparer else None,
        )
        return self.outputs.finish(facts, self.sync.missing_ids if self.sync else [])

    async def _stages(self) -> None:
        with loop_signals(self.stopping, self.options.handle_signals):
            preparer = self._preparer(await self._pre_pass())
            # A dry run reads the file no more after this; a run that sends may read it again
            # at its end (the sources of the records the API rejects): its digest waits.
            whole = self.source.batches(first=FIRST_BATCH, last=self.options.dry_run)
            read = sharded(whole, self.plan, self.options.shard)
            self.prepared = OrderedMap(preparer.prepare, read)
            batches = preparer.tallied(self.prepared)
            items = self._items(self.sync.recorded(batches) if self.sync else batches)
            try:
                with self.recorder.commits, self.progress.ticking(self._progress):
                    await (self._drain(items) if self.options.dry_run else self._send(items))
            finally:
                self.prepared.stop()  # a stopped run reads and prepares no further batch

    async def _pre_pass(self) -> pl.Series:
        """Counts the records and checks the export as a whole before anything is sent;
        returns the hashes of the ids that occur more than once."""
        ids = self.source.batches(columns=id_columns(self.plan))
        known = self.sync.last_export_ids() if self.sync is not None else None
        shard, stopping = self.options.shard, self.stopping.requested
        scan = partial(pre_pass, ids, self.plan, self.settings.out_dir, shard=shard, known=known)
        found = await asyncio.to_thread(scan, stopping=stopping)
        self.stopping.check("while the records were being counted")
        self.total = found.records
        self.journal.set_meta(records=str(self.total), shard=str(self.options.shard or ""))
        log.info("%d records; %d ids occur more than once", self.total, len(found.repeated))
        guard_empty(found.file_records, self.job.allow_empty)
        if self.sync is not None:
            self.sync.guard_missing(found.absent, allow=self.options.allow_missing)
        return found.repeated

    def _preparer(self, repeated: pl.Series) -> BatchPreparer:
        done = self.journal.done_rows()
        self.recorder.resumed(self.journal.count_by_status())
        split = self.sync.split_unchanged if self.sync is not None else None
        # Per-field counts in every run (report.html): a pass over each batch's checked frame
        stats = self.options.field_stats or FieldStats(tuple(self.job.mapping.fields))
        self.preparer = BatchPreparer(
            self.plan, self.outputs.kept_columns, repeated, done, split, stats
        )
        return self.preparer

    async def _items(self, batches: Iterator[PreparedBatch]) -> AsyncIterator[list[SendItem]]:
        """Items to send, a batch at a time, in file order; repeated ids last, once decided."""
        fresh = self.recorder.counters.done == 0 and not self.options.dry_run
        guard = InvalidRatioGuard(self.job.max_invalid_ratio, enabled=fresh)
        held = []
        async for prepared in guard.checked(prefetch(batches)):
            self.stopping.check()
            self.recorder.prepared(prepared)
            held += prepared.held
            yield self._to_send(prepared.sends)
        yield self._to_send(self._decide_repeated(held))
        if self.sync is not None:
            already = self.journal.done_rows(below=0)
            yield self._to_send(self.sync.deactivations(already, send=not self.options.dry_run))

    def _to_send(self, sends: pl.DataFrame) -> list[SendItem]:
        """The items to send; none in a dry run, which records the records as valid."""
        if not self.options.dry_run:
            return send_items(sends)
        self.recorder.valid(sends)
        return []

    def _decide_repeated(self, held: list[HeldRecord]) -> pl.DataFrame:
        decision = decide(held, self.job.duplicates)
        self.recorder.decided(decision)
        if self.preparer is not None:
            self.preparer.decided(decision)
        sends = decision.sends()
        if self.sync is not None:
            sends, unchanged = self.sync.split_unchanged(sends)
            self.recorder.unchanged(unchanged)
            self.sync.record_sends(sends)
        return sends

    async def _send(self, items: AsyncIterator[list[SendItem]]) -> None:
        assert self.credentials is not None
        limits, transport = self.settings.limits, self.options.transport
        async with open_sender(
            self.job.api, self.credentials, limits, self.recorder.outcome, transport
        ) as sender:
            self.stats = sender.stats
            self.stopping.listen(sender.stop)
            with self.timeline.sampling(sender.stats):  # once a second, off the request path
                await sender.run(items)

    def _progress(self) -> Progress:
        return self.recorder.progress(self.total, self.stats.requests)

    async def _drain(self, items: AsyncIterator[list[SendItem]]) -> None:
        """A dry run: nothing to send (``_to_send`` recorded the valid records)."""
        async for _ in items:
            pass
        self.stopping.check()
