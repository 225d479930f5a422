"""run_job(): the only module that knows the order of the stages.

settings, credentials -> open the source -> plan the mapping -> the journal (new, resumed
or refused) -> the incremental state
-> pre-pass: count the records, find the repeated externalIds
-> batches: read (one thread), map and validate (two threads), a few batches ahead of the
   sender -> send (a dry run records them as valid)
-> repeated ids decided and sent -> deactivations (incremental sync)
-> outputs: reject sources, summary.json, results.csv, rejects.csv, on every exit path
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Final, TypeVar

import polars as pl

from customer_import.config import Credentials, JobConfig, read_credentials
from customer_import.contracts import (
    EXTERNAL_ID,
    ROW,
    SENT_OK,
    Batch,
    HeldRecord,
    InputFacts,
    PreparedBatch,
    Progress,
    RecordStatus,
    ResultRow,
    RunReport,
    RunStatus,
    SendItem,
)
from customer_import.errors import Interrupted, InvalidInputGuard, RunAborted
from customer_import.outputs.finish import RunOutputs
from customer_import.outputs.summary import RunFacts
from customer_import.record.incremental import IncrementalSync, incremental_sync
from customer_import.record.journal import Journal, JournalState, open_run_journal
from customer_import.record.recorder import Recorder
from customer_import.run.ending import Ending, ending_of, whole_file_check
from customer_import.run.options import RunOptions
from customer_import.run.process import handlers_set, lean_gc, loop_signals, run_async
from customer_import.run.progress import ProgressReporter
from customer_import.run.settings import Settings, resolve_settings
from customer_import.send.sender import Sender
from customer_import.send.setup import open_sender
from customer_import.send.stats import SendStats
from customer_import.source import Source, open_source
from customer_import.transform.duplicates import RepeatedIdFinder, decide
from customer_import.transform.frames import send_items
from customer_import.transform.guard import InvalidRatioGuard
from customer_import.transform.mapping import MappingPlan, plan_mapping
from customer_import.transform.parallel import OrderedMap
from customer_import.transform.prepare import BatchPreparer, Prepared, id_columns, scan_ids
from customer_import.transform.sharding import sharded

log = logging.getLogger("customer_import")

_TICK_S: Final = 0.5
#: The first batch is this small so that sending starts in a fraction of a second; the next
#: batches, [source] batch_size each, are prepared while it is being sent.
FIRST_BATCH: Final = 1_000
T = TypeVar("T")


def run_job(job: JobConfig, options: RunOptions | None = None) -> RunReport:
    """Run one job end to end in this process; raises ConfigError/InputError before anything
    is sent. Its files are written however the run ends."""
    options = options or RunOptions()
    environ = os.environ if options.environ is None else options.environ
    settings = resolve_settings(job, options, environ)
    credentials = None if options.dry_run else read_credentials(job.api, environ)
    with open_source(job.source, settings.input, options.input_copy) as source:
        plan = plan_mapping(job.mapping, source.header, source.columns, job.source.null_values)
        journal = open_run_journal(
            settings.out_dir,
            source.digest,  # a remote object's is computed as it is copied
            _fingerprint(job, options),
            resume=options.resume,
            restart=options.restart,
        )
        try:
            sync = incremental_sync(
                job,
                settings.base_url,
                environ,
                diff=(options.mode or job.mode) == "incremental",
                dry_run_work=settings.out_dir / ".incremental-dry-run" if options.dry_run else None,
            )
            run = _Run(job, settings, options, source, plan, journal, sync, credentials)
            # Once the run has ended, the handlers from before it are put back.
            with lean_gc(), handlers_set(None) if options.handle_signals else nullcontext():
                return run.execute()
        finally:
            journal.close()


def _fingerprint(job: JobConfig, options: RunOptions) -> str:
    """What must not change between a run and its resume (not the URL: a 404 is fixed there)."""
    relevant = job.model_dump_json(include={"name", "source", "mapping", "duplicates", "mode"})
    text = f"{relevant}|dry_run={options.dry_run}|shard={options.shard}"
    return hashlib.sha256(text.encode()).hexdigest()


class _Run:
    """One execution: the stages in order, and what they share."""

    def __init__(
        self,
        job: JobConfig,
        settings: Settings,
        options: RunOptions,
        source: Source,
        plan: MappingPlan,
        journal: Journal,
        sync: IncrementalSync | None,
        credentials: Credentials | None,
    ) -> None:
        self.job, self.settings, self.options = job, settings, options
        self.source, self.plan, self.journal, self.sync = source, plan, journal, sync
        self.credentials = credentials
        self.outputs = RunOutputs(settings.out_dir, journal, source, job.source.drop_columns)
        self.recorder = Recorder(journal)
        self.progress = ProgressReporter(options.progress)
        self.sender: Sender | None = None
        self.preparer: BatchPreparer | None = None
        self.prepared: OrderedMap[Batch, Prepared] | None = None
        self.interrupted: int | None = None
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
        ending = ending_of(failure, self.job.api, self.recorder)
        self.journal.flush()
        ending = whole_file_check(ending, self.total, self.journal)
        if self.sync is not None and not isinstance(failure, InvalidInputGuard):
            succeeded = pl.Series(ROW, self.journal.rows_with_status(SENT_OK), dtype=pl.Int64)
            self.sync.finish(succeeded, completed=ending.status is RunStatus.COMPLETED)
        if ending.status is RunStatus.COMPLETED:
            self.journal.set_meta(state=JournalState.COMPLETED)
        elif isinstance(failure, InvalidInputGuard):  # nothing was sent: nothing to resume
            self.journal.set_meta(state=JournalState.GUARDED)
        facts = self._facts(ending, time.monotonic() - started)
        summary = self.outputs.finish(facts, self.sync.missing_ids if self.sync else [])
        return RunReport(
            ending.status, summary, self.settings.out_dir, ending.message, ending.signum
        )

    def _facts(self, ending: Ending, duration_s: float) -> RunFacts:
        source, settings, shard = self.source, self.settings, self.options.shard
        deactivated = self.journal.count_deactivated() if self.sync is not None else 0
        return RunFacts(
            job=self.job.name,
            status=ending.status,
            message=ending.message,
            dry_run=self.options.dry_run,
            total=self.total,
            records_this_run=self.recorder.this_run,
            duration_s=duration_s,
            input=InputFacts(str(settings.input), source.size, source.digest),
            encoding=source.encoding,
            delimiter=source.delimiter,
            base_url=settings.base_url,
            out_dir=str(settings.out_dir),
            sent=self._stats().facts(),
            shard=str(shard) if shard else None,
            warnings=self._warnings(),
            incremental=self.sync.facts(deactivated) if self.sync is not None else None,
        )

    def _warnings(self) -> list[str]:
        """Data problems that reject nothing but that a person should hear about."""
        warnings = self.preparer.warnings() if self.preparer is not None else []
        for warning in warnings:
            log.warning("%s", warning)
        return warnings

    async def _stages(self) -> None:
        with loop_signals(self._on_signal, self.options.handle_signals):
            preparer = self._preparer(await self._pre_pass())
            self.prepared = OrderedMap(preparer.prepare, self._batches(first=FIRST_BATCH))
            items = self._items(self._tallied(self.prepared, preparer))
            ticker = asyncio.create_task(self._tick())
            try:
                await (self._record_dry(items) if self.options.dry_run else self._send(items))
            finally:
                self.prepared.stop()  # a stopped run reads and prepares no further batch
                ticker.cancel()
                self._report_progress()

    async def _pre_pass(self) -> pl.Series:
        """Counts the records; returns the hashes of the ids that occur more than once."""
        id_batches = self._batches(id_columns(self.plan))
        with tempfile.TemporaryDirectory(dir=self.settings.out_dir, prefix=".ids-") as spill:
            finder = RepeatedIdFinder(Path(spill))
            self.total = await asyncio.to_thread(
                scan_ids, id_batches, self.plan, finder, lambda: self.interrupted is not None
            )
            self._check_interrupted("while the records were being counted")
            repeated = finder.repeated()
        log.info("%d records; %d ids occur more than once", self.total, len(repeated))
        return repeated

    def _preparer(self, repeated: pl.Series) -> BatchPreparer:
        done = pl.Series(ROW, self.journal.done_rows(), dtype=pl.Int64)
        self.recorder.counters.done = len(done)
        split = self.sync.split_unchanged if self.sync is not None else None
        self.preparer = BatchPreparer(
            self.plan, self.outputs.kept_columns, repeated, done, split, self.options.field_stats
        )
        return self.preparer

    def _batches(
        self, columns: list[str] | None = None, first: int | None = None
    ) -> Iterator[Batch]:
        """The source's batches, only this shard's records when the run is one shard of N."""
        batches = self.source.batches(columns=columns, first=first)
        return sharded(batches, self.plan, self.options.shard)

    def _tallied(
        self, prepared: Iterator[Prepared], preparer: BatchPreparer
    ) -> Iterator[PreparedBatch]:
        """The run's tallies and, for an incremental sync, what the export holds and what is
        sent: in file order, in the thread that hands the batches on."""
        for batch, quality in prepared:
            preparer.tally(quality)
            if self.sync is not None:
                self.sync.record_read(batch.ids)
                self.sync.record_sends(batch.sends)
            yield batch

    async def _items(self, batches: Iterator[PreparedBatch]) -> AsyncIterator[list[SendItem]]:
        """Items to send, a batch at a time, in file order; repeated ids last, once decided."""
        fresh = self.recorder.counters.done == 0
        guard = InvalidRatioGuard(
            self.job.max_invalid_ratio, enabled=fresh and not self.options.dry_run
        )
        held = []
        async for prepared in guard.checked(_prefetch(batches)):
            self._check_interrupted()
            for reject in prepared.rejects:
                self.recorder.reject(reject)
            self._record_unchanged(prepared.unchanged)
            held += prepared.held
            if self.options.dry_run:  # nothing to send: record the batch's valid records at once
                self.recorder.valid(prepared.sends.select(ROW, EXTERNAL_ID).iter_rows())
                continue
            yield send_items(prepared.sends)
        yield self._decide_repeated(held)
        if self.sync is not None:
            already = self.journal.done_rows(below=0)
            yield send_items(self.sync.deactivations(already, send=not self.options.dry_run))

    def _decide_repeated(self, held: list[HeldRecord]) -> list[SendItem]:
        decision = decide(held, self.job.duplicates)
        for result in decision.results():
            self.recorder.result(result)
        for reject in decision.rejects():
            self.recorder.reject(reject)
        # Decided records must be durable before their chosen twin is sent: a resume relies on it.
        self.journal.flush()
        sends = decision.sends()
        if self.sync is not None:
            sends, unchanged = self.sync.split_unchanged(sends)
            self._record_unchanged(unchanged)
            self.sync.record_sends(sends)
        return send_items(sends)

    def _record_unchanged(self, records: list[tuple[int, str]]) -> None:
        for row, external_id in records:
            self.recorder.result(ResultRow(row, external_id, RecordStatus.UNCHANGED))

    async def _send(self, items: AsyncIterator[list[SendItem]]) -> None:
        assert self.credentials is not None
        async with open_sender(
            self.job.api,
            self.credentials,
            base_url=self.settings.base_url,
            concurrency=self.settings.concurrency,
            rate_limit=self.settings.rate_limit,
            on_outcome=self.recorder.outcome,
            transport=self.options.transport,
        ) as sender:
            self.sender = sender
            await sender.run(items)

    async def _record_dry(self, items: AsyncIterator[list[SendItem]]) -> None:
        """A dry run: what would be sent is recorded as valid."""
        async for batch in items:
            self.recorder.valid((item.row, item.external_id) for item in batch)
        self._check_interrupted()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            # In a thread: SQLite's writing would otherwise hold up every request's answer
            # (about 6 us a record, 1.5 % of a run against a fast API).
            await asyncio.to_thread(self.journal.flush)
            self._report_progress()

    def _report_progress(self) -> None:
        counters, stats = self.recorder.counters, self._stats()
        self.progress.report(
            lambda: Progress(self.total, counters.done, dict(counters.by_status), stats.requests)
        )

    def _on_signal(self, signum: int) -> None:
        """Take no new records; requests in flight finish; the rest stays pending."""
        self.interrupted = signum
        if self.sender is not None:
            self.sender.stop(Interrupted(signum))

    def _check_interrupted(self, detail: str = "") -> None:
        if self.interrupted is not None:
            raise Interrupted(self.interrupted, detail)

    def _stats(self) -> SendStats:
        return self.sender.stats if self.sender is not None else SendStats()


async def _prefetch(batches: Iterator[T]) -> AsyncIterator[T]:
    """Prepare the next batch in a thread while the current one is being sent."""
    loop = asyncio.get_running_loop()
    upcoming = loop.run_in_executor(None, next, batches, None)
    while (current := await upcoming) is not None:
        upcoming = loop.run_in_executor(None, next, batches, None)
        yield current
