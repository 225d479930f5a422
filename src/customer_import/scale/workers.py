"""``run_in_workers``: N processes, each ``run_job`` on one shard of the records, then one
merged output.

Each worker is a fresh interpreter (multiprocessing's "spawn": nothing of the parent's threads
or event loop is inherited) with its own event loop, so both cores send and validate; it runs
``run_job`` with the caller's options, its shard (``--shard K/N``) and its own output folder,
``OUT/shards/K-of-N``. When all have stopped, their outputs are merged into ``OUT``.
SIGINT/SIGTERM are passed on to the workers, which stop cleanly; a resume resumes every shard.
Each worker sends its progress on a pipe of its own (no lock shared between workers: one
that is killed cannot block another); the parent adds them up into the run's one display.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import shutil
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from customer_import.config import JobConfig, is_url
from customer_import.contracts import ExitCode, Progress, RecordStatus, RunReport
from customer_import.errors import ConfigError, ImportJobError, RunAborted
from customer_import.logs import configure as configure_logs
from customer_import.outputs.metrics import write_metrics
from customer_import.record.history import History
from customer_import.record.locks import FolderLock
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.run.process import handlers_set
from customer_import.scale.merge import merge_run
from customer_import.source import shared_copy
from customer_import.transform.sharding import Shard, check_shardable, concurrency_shares

log = logging.getLogger("customer_import")


def shard_dirs(out_dir: Path, workers: int) -> list[Path]:
    return [out_dir / "shards" / f"{k}-of-{workers}" for k in range(1, workers + 1)]


def run_in_workers(
    job: JobConfig, options: RunOptions, workers: int, *, log_format: str = "text"
) -> RunReport:
    """Run the job as ``workers`` processes, one shard each, and merge their outputs.

    ``options`` are the run's (``out_dir``: where the merged files go); ``log_format`` is
    the workers' logging ("text" or "json", on their standard error)."""
    _check(job, options, workers)
    out_dir = options.out_dir or job.output.dir
    assert out_dir is not None  # load_job always resolves it
    folders = shard_dirs(out_dir, workers)
    history = History(out_dir)
    # The merged folder is this run's (each worker locks its shard's); an object on S3 or GCS
    # is copied once for all the workers, rather than once each.
    with (
        FolderLock(out_dir, "the output folder"),
        shared_copy(options.input or job.source.path) as copy,
    ):
        run_id = history.new_run()
        try:
            copy = copy or _kept_input(history, run_id, options.input or job.source.path)
            shared = dataclasses.replace(
                options, input_copy=copy, progress=None, transport=None, handle_signals=True
            )
            plans = [
                dataclasses.replace(shared, shard=Shard(k, workers), out_dir=folder)
                for k, folder in enumerate(folders, 1)
            ]
            codes, signum = _run_all(
                job, plans, log_format, CombinedProgress(workers, options.progress)
            )
            if ExitCode.NOTHING_DONE in codes:
                raise ConfigError(
                    "a worker refused to start (its message is above); nothing was merged"
                )
            if not all((folder / "summary.json").exists() for folder in folders):
                raise RunAborted(
                    f"a worker stopped without writing its summary (exit codes {codes})"
                )
        except BaseException:
            shutil.rmtree(history.folder(run_id), ignore_errors=True)  # nothing merged into it
            raise
        summary = merge_run(folders, history, run_id, job.output.keep_runs)
    report = RunReport(summary.status, summary, out_dir, summary.message, signum)
    if job.output.metrics_file is not None:
        write_metrics(job.output.metrics_file, report)
    return report


def _kept_input(history: History, run_id: str, given: Path | str | None) -> Path | None:
    """A local input in the output folder, copied into the run's folder for the workers."""
    if given is None or is_url(given) or not history.holds(Path(given)):
        return None
    return history.input_for(run_id, Path(given)) if Path(given).is_file() else None


def _check(job: JobConfig, options: RunOptions, workers: int) -> None:
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if options.shard is not None:
        raise ConfigError("--workers and --shard do not go together: a shard runs in one process")
    check_shardable(job, options.mode)
    if not options.dry_run:  # refused here once, rather than by every worker
        concurrency_shares(options.concurrency or job.api.concurrency, workers)


def _run_all(
    job: JobConfig, plans: list[RunOptions], log_format: str, progress: CombinedProgress
) -> tuple[list[int], int | None]:
    """The workers' exit codes, and the signal passed on to them, if any."""
    context = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    # From before the first worker starts until they have all ended, a signal is passed on
    # to the workers still running, and otherwise only noted.
    with _signals_forwarded(processes) as received:
        readers = []
        try:
            for k, plan in enumerate(plans):
                receiving, sending = context.Pipe(duplex=False)
                process = context.Process(
                    target=_worker, args=(job, plan, sending, log_format), name=f"shard-{k + 1}"
                )
                processes.append(process)
                process.start()
                sending.close()  # the worker's end: the reader sees EOF once the worker ends
                readers.append(_follow(progress, k, receiving))
                if received:  # a signal came while the workers were being started
                    _send_signal(process, received[0])
            codes = [_wait(p) for p in processes]
        except BaseException:
            _stop(processes)  # none is left running on a copy of the input about to be deleted
            raise
        for reader in readers:
            reader.join()
    return codes, received[0] if received else None


def _worker(job: JobConfig, options: RunOptions, progress: Connection, log_format: str) -> None:
    """One shard, in its own process: exits with the run's exit code."""
    configure_logs(log_format)
    no_metrics = job.output.model_copy(update={"metrics_file": None})  # the merged run's, after
    job = job.model_copy(update={"output": no_metrics})
    options = dataclasses.replace(options, progress=progress.send)
    try:
        report = run_job(job, options)
    except ImportJobError as exc:
        log.error("%s", exc)
        sys.exit(exc.exit_code)
    finally:
        progress.close()
    sys.exit(report.exit_code)


def _follow(progress: CombinedProgress, worker: int, connection: Connection) -> threading.Thread:
    reader = threading.Thread(
        target=progress.follow, args=(worker, _received(connection)), daemon=True
    )
    reader.start()
    return reader


def _received(connection: Connection) -> Iterator[object]:
    """What a worker sends, until it ends (or its pipe breaks)."""
    with connection:
        while True:
            try:
                yield connection.recv()
            except (EOFError, OSError):
                return


def _wait(process: BaseProcess) -> int:
    process.join()
    return process.exitcode if process.exitcode is not None else int(ExitCode.SOFTWARE)


def _stop(processes: list[BaseProcess]) -> None:
    """The workers started, stopped as by SIGTERM (cleanly: they write their files)."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        if process.pid is not None:
            process.join()


def _send_signal(process: BaseProcess, signum: int) -> None:
    if process.is_alive() and process.pid is not None:
        os.kill(process.pid, signum)


@contextmanager
def _signals_forwarded(processes: list[BaseProcess]) -> Iterator[list[int]]:
    """SIGINT/SIGTERM passed on to the workers that still run; the signals received."""
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        for process in processes:
            _send_signal(process, signum)

    with handlers_set(forward):
        yield received


class CombinedProgress:
    """The workers' progress, added up and passed on as the run's, once every worker has
    reported (until then the run's total is not known)."""

    def __init__(self, workers: int, on_progress: Callable[[Progress], None] | None) -> None:
        self._latest: list[Progress | None] = [None] * workers
        self._on_progress = on_progress
        self._lock = threading.Lock()  # one reading thread a worker

    def follow(self, worker: int, reports: Iterable[object]) -> None:
        """Read one worker's reports to their end, whatever happens to the display: a worker
        whose pipe is not drained would block once it is full. Anything else is skipped."""
        for reported in reports:
            if isinstance(reported, Progress):
                with self._lock:
                    self._latest[worker] = reported
                    self._show()

    def _show(self) -> None:
        known = [p for p in self._latest if p is not None]
        if self._on_progress is None or len(known) < len(self._latest):
            return
        try:
            self._on_progress(_added(known))
        except Exception as exc:  # the display fails, the run goes on
            self._on_progress = None
            log.warning("progress is no longer shown (%s); the run goes on", exc)


def _added(reports: list[Progress]) -> Progress:
    counts: Counter[RecordStatus] = Counter()
    for report in reports:
        counts.update(report.counts)
    return Progress(
        sum(r.total for r in reports),
        sum(r.done for r in reports),
        dict(counts),
        sum(r.requests for r in reports),
    )
