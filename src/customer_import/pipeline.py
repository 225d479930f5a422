"""run_job(): the only module that knows the order of the stages.

settings -> open source -> plan mapping -> journal (new, resumed or refused)
-> pre-pass over the ids (repeated externalIds) -> batches: read (one thread), map and
   validate (two threads), a few batches ahead of the sender -> send (or, in a dry run,
   record as valid)
-> repeated ids decided and sent -> source values of API rejects filled in
-> results.csv, rejects.csv, summary.json rendered from the journal
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import polars as pl

from customer_import import outputs
from customer_import.api_client import make_client
from customer_import.config import Credentials, JobConfig, read_credentials
from customer_import.duplicates import HeldRecord, RepeatedIdFinder, decide
from customer_import.errors import (
    ApiUnavailable,
    FatalApiError,
    Interrupted,
    RunAborted,
)
from customer_import.fieldstats import FieldStats
from customer_import.flow import CircuitBreaker, Pacer
from customer_import.guard import InvalidInputGuard, InvalidRatioGuard
from customer_import.mapping import MappingPlan, plan_mapping
from customer_import.outputs import rejects_columns
from customer_import.parallel import OrderedMap
from customer_import.quality import double_encoding_warning
from customer_import.recorder import Recorder
from customer_import.records import (
    BatchPreparer,
    PreparedBatch,
    id_columns,
    scan_ids,
    send_items,
)
from customer_import.sender import (
    RetryPolicy,
    Sender,
    SendItem,
    SendStats,
)
from customer_import.settings import Settings, resolve_settings
from customer_import.sharding import Shard, sharded
from customer_import.signals import STOPS, handlers_set
from customer_import.snapshot import BODY as SNAPSHOT_BODY
from customer_import.snapshot import ID as SNAPSHOT_ID
from customer_import.snapshot import (
    IncrementalSync,
    deactivation_body,
    incremental_sync,
)
from customer_import.source import ROW, Batch, Source, open_source
from customer_import.state import (
    COMPLETED,
    GUARDED,
    SENT_OK,
    Journal,
    RejectRow,
    ResultRow,
    open_run_journal,
)
from customer_import.summary import RunFacts, build_summary

log = logging.getLogger("customer_import")

#: How a run ended (summary.json "status").
STATUS_COMPLETED: Final = "completed"
STATUS_ABORTED: Final = "aborted"
STATUS_INTERRUPTED: Final = "interrupted"

MISSING_LISTED: Final = 1_000  # ids listed in summary.json; missing.csv has them all
_TICK_S: Final = 0.5
#: The first batch is this small so that sending starts in a fraction of a second; the next
#: batches, [source] batch_size each, are prepared while it is being sent.
FIRST_BATCH: Final = 1_000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    done: int
    counts: dict[str, int]
    requests: int


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What a caller may set beyond the job file; None means "as the job file says"."""

    input: Path | str | None = None
    input_copy: Path | None = None  # a remote input's copy, made by a --workers parent
    out_dir: Path | None = None
    base_url: str | None = None
    concurrency: int | None = None
    rate_limit: float | None = None
    mode: str | None = None  # "full" / "incremental": overrides the job file's mode
    dry_run: bool = False
    resume: bool = False
    restart: bool = False
    progress: Callable[[Progress], None] | None = None
    transport: httpx.AsyncBaseTransport | None = None
    environ: Mapping[str, str] | None = None
    handle_signals: bool = False
    field_stats: FieldStats | None = None  # filled in for `customer-import check`
    shard: Shard | None = None  # this run is shard K of N (README, "Scale beyond one machine")


@dataclass(frozen=True, slots=True)
class RunReport:
    status: str
    summary: dict[str, Any]
    out_dir: Path
    message: str | None = None
    signum: int | None = None

    @property
    def rejected(self) -> int:
        return int(self.summary.get("rejected", 0))


def run_job(job: JobConfig, options: RunOptions | None = None) -> RunReport:
    """Run one job end to end; raises ConfigError/InputError before anything is sent."""
    options = options or RunOptions()
    environ = os.environ if options.environ is None else options.environ
    settings = resolve_settings(
        job,
        options.input,
        options.out_dir,
        options.base_url,
        options.concurrency,
        options.rate_limit,
        shard=options.shard,
        dry_run=options.dry_run,
        environ=environ,
    )
    credentials = None if options.dry_run else read_credentials(job.api, environ)
    with open_source(job.source, settings.input, options.input_copy) as source:
        plan = plan_mapping(job.mapping, source.header, source.columns, job.source.null_values)
        fingerprint = _fingerprint(job, options.dry_run, options.shard)
        input_digest = source.digest  # a remote object's is computed as it is copied
        journal = open_run_journal(
            settings.out_dir,
            input_digest,
            fingerprint,
            resume=options.resume,
            restart=options.restart,
        )
        sync = incremental_sync(
            job,
            settings.base_url,
            environ,
            diff=(options.mode or job.mode) == "incremental",
            dry_run_work=settings.out_dir / ".incremental-dry-run" if options.dry_run else None,
        )
        try:
            run = _Run(job, settings, options, source, plan, journal, credentials, sync)
            with _lean_gc():
                return run.execute(input_digest)
        finally:
            journal.close()


def _fingerprint(job: JobConfig, dry_run: bool, shard: Shard | None) -> str:
    """What must not change between a run and its resume (not the URL: a 404 is fixed there)."""
    relevant = job.model_dump_json(include={"name", "source", "mapping", "duplicates", "mode"})
    return hashlib.sha256(f"{relevant}|dry_run={dry_run}|shard={shard}".encode()).hexdigest()


class _Run:
    """One execution: holds what the stages share (journal, counters, sender stats)."""

    def __init__(
        self,
        job: JobConfig,
        settings: Settings,
        options: RunOptions,
        source: Source,
        plan: MappingPlan,
        journal: Journal,
        credentials: Credentials | None,
        sync: IncrementalSync | None,
    ) -> None:
        self.job, self.settings, self.options = job, settings, options
        self.sync = sync
        self.missing_ids: list[str] = []
        self.source, self.plan, self.journal = source, plan, journal
        self.credentials = credentials
        self.kept_columns, self.kept_header = rejects_columns(
            source.columns, source.header, job.source.drop_columns
        )
        self.recorder = Recorder(journal)
        self.stats = SendStats()
        self.sender: Sender | None = None
        self.preparer: BatchPreparer | None = None
        self.prepared: OrderedMap[Batch, PreparedBatch] | None = None
        self.failure: RunAborted | None = None
        self.interrupted: int | None = None
        self.total = 0
        self.progress_failed = False

    def execute(self, input_digest: str) -> RunReport:
        """The run, then its files: a further Ctrl-C meanwhile is noted, not obeyed (see
        ``_signal_while_finishing``), so the report and the output files are written."""
        if not self.options.handle_signals:
            return self._execute(input_digest)
        with handlers_set(None):  # those from before the run, once it has finished
            return self._execute(input_digest)

    def _execute(self, input_digest: str) -> RunReport:
        started = time.monotonic()
        status, message, signum = STATUS_COMPLETED, None, None
        try:
            _run_async(self._main())
        except Interrupted as exc:
            status, message, signum = STATUS_INTERRUPTED, str(exc), exc.signum
            self.failure = exc
        except RunAborted as exc:
            status, message = STATUS_ABORTED, self._explain(exc)
            self.failure = exc
        finally:
            # The event loop has ended, and with it every call that iterated these batches;
            # a read may still be under way, and must end before the source is closed.
            if self.prepared is not None:
                self.prepared.close()
        self.journal.flush()
        if status == STATUS_COMPLETED and (lost := self.total - self.journal.count_done()) > 0:
            # Cannot happen by design; if it ever does, the run says so and can be resumed
            # rather than call itself complete (exit 0) with records left behind.
            status = STATUS_ABORTED
            message = (
                f"{lost} of {self.total} records have no outcome although the whole file was read"
                " (a fault of customer-import: please report it); run again with --resume to finish"
                " them"
            )
        if self.sync is not None and not isinstance(self.failure, InvalidInputGuard):
            succeeded = pl.Series(ROW, self.journal.rows_with_status(SENT_OK), dtype=pl.Int64)
            self.sync.finish(succeeded, completed=status == STATUS_COMPLETED)
        self._fill_reject_sources()
        if status == STATUS_COMPLETED:
            self.journal.set_meta(state=COMPLETED)
        summary = self._summary(status, message, input_digest, time.monotonic() - started)
        self._write_outputs(summary)
        return RunReport(status, summary, self.settings.out_dir, message, signum)

    def _explain(self, exc: RunAborted) -> str:
        if isinstance(exc, ApiUnavailable):
            # Records that ran out of attempts as the outage began failed for the same reason:
            # pending, not rejected, so a resume once the API is back sends them too.
            forgotten = self.recorder.forget_transport_rejects()
            return f"{exc}; {forgotten} records that failed as it began are pending again"
        if isinstance(exc, InvalidInputGuard):
            # Nothing was sent: the next run starts afresh, without --resume or --restart.
            self.journal.set_meta(state=GUARDED)
            return str(exc)
        if isinstance(exc, FatalApiError) and exc.status_code == 401:
            api = self.job.api
            return f"{exc} ({api.api_key_env}, {api.merchant_id_env}); then run again with --resume"
        return f"{exc}; fix it, then run again with --resume"

    async def _main(self) -> None:
        with _signals(self._on_signal, self.options.handle_signals):
            id_batches = self._batches(id_columns(self.plan))
            with tempfile.TemporaryDirectory(dir=self.settings.out_dir, prefix=".ids-") as spill:
                finder = RepeatedIdFinder(Path(spill))
                self.total = await asyncio.to_thread(
                    scan_ids, id_batches, self.plan, finder, self._stopping
                )
                self._check_interrupted("while the records were being counted")
                repeated = finder.repeated()
            self._check_interrupted()
            done = pl.Series(ROW, self.journal.done_rows(), dtype=pl.Int64)
            self.recorder.counters.done = len(done)
            log.info("%d records; %d ids occur more than once", self.total, len(repeated))
            mask = self.sync.unchanged_mask if self.sync is not None else None
            self.preparer = preparer = BatchPreparer(
                self.plan, self.kept_columns, repeated, done, mask, self.options.field_stats
            )
            self.prepared = OrderedMap(preparer.prepare, self._batches(first=FIRST_BATCH))
            batches = self._recorded(self.prepared, preparer)
            items = self._items(batches, fresh=len(done) == 0)
            ticker = asyncio.create_task(self._tick())
            try:
                if self.options.dry_run:
                    await self._record_dry(items)
                else:
                    await self._send(items)
            finally:
                self.prepared.stop()  # a stopped run reads and prepares no further batch
                ticker.cancel()
                self._report_progress()

    def _batches(
        self, columns: list[str] | None = None, first: int | None = None
    ) -> Iterator[Batch]:
        """The source's batches, only this shard's records when the run is one shard of N."""
        batches = self.source.batches(columns=columns, first=first)
        return sharded(batches, self.plan, self.options.shard)

    def _on_signal(self, signum: int) -> None:
        """Take no new records; requests in flight finish; the rest stays pending."""
        self.interrupted = signum
        if self.sender is not None:
            self.sender.stop(Interrupted(signum))

    def _stopping(self) -> bool:
        return self.interrupted is not None

    def _check_interrupted(self, detail: str = "") -> None:
        if self.interrupted is not None:
            raise Interrupted(self.interrupted, detail)

    async def _send(self, items: AsyncIterator[list[SendItem]]) -> None:
        assert self.credentials is not None
        api = self.job.api
        headers = {
            "x-api-key": self.credentials.api_key,
            "x-merchant-id": self.credentials.merchant_id,
        }
        async with make_client(
            self.settings.base_url,
            headers,
            concurrency=self.settings.concurrency,
            timeout=api.timeout,
            transport_name=api.transport,
            transport=self.options.transport,
        ) as client:
            policy = RetryPolicy(
                api.max_attempts,
                api.backoff_base,
                api.backoff_max,
                max_rate_limited_s=api.max_rate_limited_s,
            )
            sender = Sender(
                client,
                concurrency=self.settings.concurrency,
                policy=policy,
                on_outcome=self.recorder.outcome,
                pacer=Pacer(ceiling=self.settings.rate_limit),
                breaker=CircuitBreaker(
                    api.breaker_failures, api.breaker_probe_s, max_outage_s=api.max_outage_s
                ),
            )
            self.stats, self.sender = sender.stats, sender
            await sender.run(items)

    async def _record_dry(self, items: AsyncIterator[list[SendItem]]) -> None:
        """A dry run: what would be sent is recorded as valid."""
        async for batch in items:
            self.recorder.valid((item.row, item.external_id) for item in batch)
        self._check_interrupted()

    async def _items(
        self, batches: Iterator[PreparedBatch], fresh: bool
    ) -> AsyncIterator[list[SendItem]]:
        """Items to send, a batch at a time, in file order; repeated ids last, once decided."""
        guard = InvalidRatioGuard(
            self.job.max_invalid_ratio, enabled=fresh and not self.options.dry_run
        )
        held: list[HeldRecord] = []
        async for prepared in guard.checked(_prefetch(batches)):
            self._check_interrupted()
            for reject in prepared.rejects:
                self.recorder.reject(reject)
            for row, external_id in prepared.unchanged:
                self.recorder.result(ResultRow(row, external_id, "unchanged"))
            held += prepared.held
            if self.options.dry_run:  # nothing to send: record the batch's valid records at once
                self.recorder.valid(prepared.sends.select(ROW, "externalId").iter_rows())
                continue
            yield send_items(prepared.sends)
        yield self._decide_repeated(held)
        yield self._deactivations()

    def _recorded(
        self, batches: Iterator[PreparedBatch], preparer: BatchPreparer
    ) -> Iterator[PreparedBatch]:
        """The run's totals, and for an incremental sync what the export holds and what is
        sent: in file order, in the thread that hands the batches on."""
        for prepared in batches:
            preparer.tally(prepared)
            if self.sync is not None:
                self.sync.record_read(prepared.ids)
                self.sync.record_sends(prepared.sends)
            yield prepared

    def _deactivations(self) -> list[SendItem]:
        """Customers gone from the export since the last run: listed, or set active = false."""
        if self.sync is None:
            return []
        missing = self.sync.missing()
        self.missing_ids = missing[SNAPSHOT_ID].to_list()
        if missing.is_empty() or self.job.on_missing != "deactivate" or self.options.dry_run:
            return []
        done = self.journal.done_rows(below=0)  # deactivations already sent
        frame = pl.DataFrame(
            {
                ROW: range(-1, -missing.height - 1, -1),  # not input records: rows below 1
                SNAPSHOT_ID: missing[SNAPSHOT_ID],
                "_body": [deactivation_body(b).decode() for b in missing[SNAPSHOT_BODY]],
            },
            schema={ROW: pl.Int64, SNAPSHOT_ID: pl.String, "_body": pl.String},
        ).filter(~pl.col(ROW).is_in(done))
        self.sync.record_sends(frame)
        return send_items(frame)

    def _decide_repeated(self, held: list[HeldRecord]) -> list[SendItem]:
        decision = decide(held, self.job.duplicates)
        for record, chosen in decision.duplicate:
            detail = f"superseded by record {chosen}"
            self.recorder.result(
                ResultRow(record.row, record.external_id, "duplicate", detail=detail)
            )
        for record, stage, reason in decision.reject:
            self.recorder.reject(
                RejectRow(record.row, record.external_id, stage, reason, record.source)
            )
        # Decided records must be durable before their chosen twin is sent: a resume relies on it.
        self.journal.flush()
        sends = pl.DataFrame(
            [(r.row, r.external_id, (r.body or b"").decode()) for r in decision.send],
            schema={ROW: pl.Int64, "externalId": pl.String, "_body": pl.String},
            orient="row",
        )
        if self.sync is not None:
            unchanged = self.sync.unchanged_mask(sends["externalId"], sends["_body"])
            for row, external_id, _ in sends.filter(unchanged).iter_rows():
                self.recorder.result(ResultRow(row, external_id, "unchanged"))
            sends = sends.filter(~unchanged)
            self.sync.record_sends(sends)
        return send_items(sends)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            # In a thread: SQLite's writing would otherwise hold up every request's answer
            # (about 6 us a record, 1.5 % of a run against a fast API).
            await asyncio.to_thread(self.journal.flush)
            self._report_progress()

    def _report_progress(self) -> None:
        """Progress is shown, never in the way: a display that fails is turned off, logged once,
        and the run goes on (a --workers parent that died, a closed terminal)."""
        if self.options.progress is None or self.progress_failed:
            return
        progress = Progress(
            self.total,
            self.recorder.counters.done,
            dict(self.recorder.counters.by_status),
            self.stats.requests,
        )
        try:
            self.options.progress(progress)
        except Exception as exc:  # whatever the display, the run goes on
            self.progress_failed = True
            log.warning("progress is no longer shown (%s); the run goes on", exc)

    def _fill_reject_sources(self) -> None:
        """API and transport rejects get their source values from one more read of the file."""
        missing = self.journal.rows_missing_source()
        if not missing:
            return
        wanted = pl.Series(ROW, missing, dtype=pl.Int64)
        for batch in self.source.batches(columns=self.kept_columns):
            found = batch.frame.filter(pl.col(ROW).is_in(wanted.implode()))
            self.journal.set_sources(zip(found[ROW].to_list(), found.drop(ROW).rows(), strict=True))

    def _summary(
        self, status: str, message: str | None, digest: str, duration: float
    ) -> dict[str, Any]:
        facts = RunFacts(
            job=self.job.name,
            status=status,
            message=message,
            dry_run=self.options.dry_run,
            total=self.total,
            records_this_run=self.recorder.this_run,
            duration_s=duration,
            input_path=str(self.settings.input),
            input_size=self.source.size,
            input_digest=digest,
            encoding=self.source.encoding,
            delimiter=self.source.delimiter,
            base_url=self.settings.base_url,
            out_dir=str(self.settings.out_dir),
        )
        summary = build_summary(facts, self.journal, self.stats)
        summary["shard"] = str(self.options.shard) if self.options.shard else None
        summary["warnings"] = self._warnings()
        if self.sync is not None:
            summary["incremental"] = {
                "compared_with_snapshot": self.sync.snapshot is not None
                and self.sync.snapshot.usable,
                "state": self.sync.location.key,
                "on_missing": self.job.on_missing,
            }
            summary["missing_since_last_run"] = len(self.missing_ids)
            summary["missing_ids"] = self.missing_ids[:MISSING_LISTED]
            summary["deactivated"] = self.journal.count_deactivated()
        return summary

    def _warnings(self) -> list[str]:
        """Data problems that reject nothing but that a person should hear about."""
        found = self.preparer.suspect_text.values() if self.preparer is not None else []
        warnings = [double_encoding_warning(s) for s in found if s.frequent]
        for warning in warnings:
            log.warning("%s", warning)
        return warnings

    def _write_outputs(self, summary: dict[str, Any]) -> None:
        out_dir = self.settings.out_dir
        outputs.write_results(self.journal, out_dir)
        outputs.write_rejects(self.journal, out_dir, self.kept_header)
        if self.missing_ids:
            outputs.write_missing(self.missing_ids, self.journal, out_dir)
        outputs.write_summary(summary, out_dir)


async def _prefetch(batches: Iterator[T]) -> AsyncIterator[T]:
    """Prepare the next batch in a thread while the current one is being sent."""
    loop = asyncio.get_running_loop()
    upcoming = loop.run_in_executor(None, next, batches, None)
    while (current := await upcoming) is not None:
        upcoming = loop.run_in_executor(None, next, batches, None)
        yield current


@contextlib.contextmanager
def _lean_gc() -> Iterator[None]:
    """Fewer, cheaper garbage collections while a run goes.

    A run allocates many short-lived objects a record (requests, responses, outcomes), none
    kept in cycles: the collector's frequent passes found nothing and rescanned everything
    start-up allocated (Polars, phone metadata, modules). Start-up objects are frozen out of
    its scans and young objects are collected less often; both are put back afterwards, for
    a process that runs several jobs. Measured on the send path: 0.52 -> 0.46 ms of client CPU
    a request (``bench/run_all.py --only send``).
    """
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@contextlib.contextmanager
def _signals(handler: Callable[[int], None], enabled: bool) -> Iterator[None]:
    """Route SIGINT/SIGTERM to ``handler`` on the event loop for the duration of the run."""
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    for signum in STOPS:
        loop.add_signal_handler(signum, handler, signum)
    try:
        yield
    finally:
        for signum in STOPS:
            loop.remove_signal_handler(signum)
            signal.signal(signum, _signal_while_finishing)


def _signal_while_finishing(signum: int, frame: object) -> None:
    """A further Ctrl-C once the sending has stopped: letting it raise KeyboardInterrupt
    could close the file while a thread still reads it, and lose the report and the output
    files. kill -9 still ends the run at once: the journal keeps every outcome for --resume."""
    log.warning(
        "signal %d: the run is already finishing (writing its files); it ends in a moment",
        signum,
    )


def _run_async(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        asyncio.run(coro)
        return
    uvloop.run(coro)
