"""``run --workers N``: N processes, each one shard of the records, then one merged output.

Each worker is ``customer-import run JOB --shard K/N`` with its own event loop (so both
cores send and validate), writing to ``OUT/shards/K-of-N``; when all have stopped their
outputs are merged into ``OUT``. SIGINT/SIGTERM are passed on to the workers, which stop
cleanly; ``--resume`` resumes every shard.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from customer_import.errors import ConfigError, RunAborted
from customer_import.merge import merge_outputs


def shard_dirs(out_dir: Path, workers: int) -> list[Path]:
    return [out_dir / "shards" / f"{k}-of-{workers}" for k in range(1, workers + 1)]


def run_in_workers(
    job: Path, worker_args: Sequence[str], workers: int, out_dir: Path
) -> tuple[dict[str, Any], int | None]:
    """Run the shards, merge them; returns the merged summary and the signal passed on, if any."""
    folders = shard_dirs(out_dir, workers)
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "customer_import",
                "run",
                str(job),
                *worker_args,
                "--shard",
                f"{k}/{workers}",
                "--out",
                str(folder),
                "--no-progress",
            ],
            stdout=subprocess.DEVNULL,
        )
        for k, folder in enumerate(folders, start=1)
    ]
    received = _forward_signals(processes)
    codes = [p.wait() for p in processes]
    if 2 in codes:
        raise ConfigError("a worker refused to start (its message is above); nothing was merged")
    if not all((folder / "summary.json").exists() for folder in folders):
        raise RunAborted(f"a worker stopped without writing its summary (exit codes {codes})")
    return merge_outputs(folders, out_dir), received[0] if received else None


def _forward_signals(processes: list[subprocess.Popen[bytes]]) -> list[int]:
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    return received
