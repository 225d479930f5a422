"""``run --workers N``: N processes, each one shard of the records, then one merged output.

Each worker is ``customer-import run JOB --shard K/N`` with its own event loop (so both
cores send and validate), writing to ``OUT/shards/K-of-N``; when all have stopped their
outputs are merged into ``OUT``. SIGINT/SIGTERM are passed on to the workers, which stop
cleanly; ``--resume`` resumes every shard. Each worker writes its progress as JSON lines on
its standard output; they are added up into the run's one progress bar (or log line).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen
from types import FrameType
from typing import Any, Final

from customer_import.errors import ConfigError, RunAborted
from customer_import.merge import merge_outputs
from customer_import.pipeline import Progress
from customer_import.signals import handlers_set

log = logging.getLogger("customer_import")

PROGRESS_KEY: Final = "progress"  # a worker's progress line: {"progress": {...Progress}}


def shard_dirs(out_dir: Path, workers: int) -> list[Path]:
    return [out_dir / "shards" / f"{k}-of-{workers}" for k in range(1, workers + 1)]


def run_in_workers(
    job: Path,
    worker_args: Sequence[str],
    workers: int,
    out_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[dict[str, Any], int | None]:
    """Run the shards, merge them; returns the merged summary and the signal passed on, if any."""
    folders = shard_dirs(out_dir, workers)
    processes: list[Popen[str]] = []
    # From before the first worker starts until the merged files are written, a signal is
    # passed on to the workers still running, and otherwise only noted.
    with _signals_forwarded(processes) as received:
        try:
            for k, folder in enumerate(folders, 1):
                processes.append(_start(job, worker_args, f"{k}/{workers}", folder))
                if received:  # a signal came while the workers were being started
                    processes[-1].send_signal(received[0])
            codes = _wait(processes, CombinedProgress(workers, on_progress))
        except BaseException:
            _stop(processes)  # none is left running on a copy of the input about to be deleted
            raise
        if 2 in codes:
            raise ConfigError(
                "a worker refused to start (its message is above); nothing was merged"
            )
        if not all((folder / "summary.json").exists() for folder in folders):
            raise RunAborted(f"a worker stopped without writing its summary (exit codes {codes})")
        summary = merge_outputs(folders, out_dir)
    return summary, received[0] if received else None


def _start(job: Path, worker_args: Sequence[str], shard: str, folder: Path) -> Popen[str]:
    command = [sys.executable, "-m", "customer_import", "run", str(job), *worker_args]
    command += ["--shard", shard, "--out", str(folder), "--progress-json"]
    # A worker's output is text from this package; "replace" keeps the reading going whatever.
    return Popen(command, stdout=subprocess.PIPE, text=True, errors="replace")


def _stop(processes: list[Popen[str]]) -> None:
    """The workers started, stopped as by SIGTERM (cleanly: they write their files)."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _wait(processes: list[Popen[str]], progress: CombinedProgress) -> list[int]:
    """The workers' exit codes, their progress followed meanwhile (one thread each)."""
    readers = [
        threading.Thread(target=progress.follow, args=(k, p.stdout), daemon=True)
        for k, p in enumerate(processes)
    ]
    for reader in readers:
        reader.start()
    codes = [p.wait() for p in processes]
    for reader, process in zip(readers, processes, strict=True):
        reader.join()
        if process.stdout is not None:
            process.stdout.close()
    return codes


@contextmanager
def _signals_forwarded(processes: list[Popen[str]]) -> Iterator[list[int]]:
    """SIGINT/SIGTERM passed on to the workers that still run; the signals received."""
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    with handlers_set(forward):
        yield received


class CombinedProgress:
    """The workers' progress lines, added up and passed on as the run's, once every worker
    has reported (until then the run's total is not known)."""

    def __init__(self, workers: int, on_progress: Callable[[Progress], None] | None) -> None:
        self._latest: list[Progress | None] = [None] * workers
        self._on_progress = on_progress
        self._lock = threading.Lock()  # one reading thread a worker

    def follow(self, worker: int, lines: Iterable[str] | None) -> None:
        """Read one worker's output to its end, whatever happens to the display: a worker
        whose pipe is not drained would block once it is full. Other lines are skipped."""
        for line in lines or ():
            reported = _progress_line(line)
            if reported is not None:
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


def _progress_line(line: str) -> Progress | None:
    try:
        fields = json.loads(line)[PROGRESS_KEY]
        return Progress(
            int(fields["total"]),
            int(fields["done"]),
            {str(k): int(v) for k, v in fields["counts"].items()},
            int(fields["requests"]),
        )
    except Exception:  # not a progress line: skipped, and the reading goes on
        return None


def _added(reports: list[Progress]) -> Progress:
    counts: Counter[str] = Counter()
    for report in reports:
        counts.update(report.counts)
    return Progress(
        sum(r.total for r in reports),
        sum(r.done for r in reports),
        dict(counts),
        sum(r.requests for r in reports),
    )
