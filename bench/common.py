"""What the benchmarks share: paths, credentials, child processes measured with wait4, results.

Every child process gets an environment without proxy variables, so its traffic can only go to
the loopback sandbox it was pointed at.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from customer_import.sandbox.testing import SandboxServer

BENCH_DIR: Final = Path(__file__).resolve().parent
ROOT: Final = BENCH_DIR.parent
DATA_DIR: Final = BENCH_DIR / "data"  # git-ignored
RESULTS_DIR: Final = BENCH_DIR / "results"  # git-ignored
API_KEY: Final = "bench-key"
MERCHANT_ID: Final = "bench-merchant"
_PROXY_VARS: Final = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
T = TypeVar("T")


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without proxies, with the sandbox credentials and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    env.update(CUSTOMERS_API_KEY=API_KEY, CUSTOMERS_MERCHANT_ID=MERCHANT_ID)
    env.update(extra or {})
    return env


def sandbox(**options: Any) -> SandboxServer:
    """A fresh sandbox (in-memory database) on a free loopback port."""
    return SandboxServer(api_key=API_KEY, merchant_id=MERCHANT_ID, **options)


def run_uvloop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when it is importable, as the job does."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not built for every platform
        return asyncio.run(coro)
    return uvloop.run(coro)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: how noisy the repeats were."""
    mid = median(values)
    return (max(values) - min(values)) / mid if values and mid else 0.0


@dataclass(frozen=True, slots=True)
class ChildRun:
    """A finished child process, measured by the kernel (wait4) rather than by itself."""

    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    stdout: str
    stderr: str
    timed_out: bool


def run_child(
    command: Sequence[str],
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ChildRun:
    """Run ``command`` to its end (SIGTERM after ``timeout_s``), measured by the kernel.

    It is started through ``spawn.py``, which reads its CPU and peak RSS from wait4: started
    from this process directly, its peak RSS would include this process's own (see spawn.py).
    """
    with tempfile.TemporaryDirectory() as tmp:
        report, out, err = Path(tmp) / "usage.json", Path(tmp) / "out", Path(tmp) / "err"
        wrapped = [sys.executable, "-I", str(BENCH_DIR / "spawn.py"), str(report), "--"]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [*wrapped, *command],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                cwd=cwd,
                start_new_session=True,  # one process group: spawn.py and the command
            )
            timed_out = _wait(process, timeout_s)
        usage: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
        code = usage.get("returncode", process.returncode)
        return ChildRun(
            returncode=-1 if code is None else int(code),
            wall_s=float(usage.get("wall_s", "nan")),
            cpu_s=float(usage.get("cpu_s", "nan")),
            max_rss_mb=float(usage.get("max_rss_kb", "nan")) / 1024,  # kilobytes on Linux
            stdout=out.read_text(errors="replace"),
            stderr=err.read_text(errors="replace"),
            timed_out=timed_out,
        )


def _wait(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait; at the deadline SIGTERM (the job writes its outputs), then SIGKILL the group."""
    try:
        process.wait(timeout_s)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # spawn.py passes it on to the command
    try:
        process.wait(60)  # time to write the outputs
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return True


@dataclass(frozen=True, slots=True)
class JobRun:
    """One ``customer-import run`` child: its summary.json and what the kernel measured."""

    summary: dict[str, Any]
    child: ChildRun

    @property
    def requests_per_s(self) -> float:
        """Requests over the run's own duration (reading, validating and writing included)."""
        return float(self.summary["requests"]) / float(self.summary["duration_s"])

    @property
    def cpu_ms_per_request(self) -> float:
        """The whole process's CPU (start-up, pre-pass, outputs) per request sent."""
        requests = int(self.summary["requests"])
        return self.child.cpu_s * 1000 / requests if requests else float("nan")


def run_job(
    job_file: Path,
    args: Sequence[str],
    *,
    out_dir: Path,
    timeout_s: float,
    python_args: Sequence[str] = (),
) -> JobRun:
    """``python -m customer_import run JOB --no-progress --out OUT ARGS`` in a child."""
    command = [sys.executable, *python_args, "-m", "customer_import", "run", str(job_file)]
    command += ["--no-progress", "--out", str(out_dir), *args]
    child = run_child(command, timeout_s=timeout_s, env=child_env())
    summary_file = out_dir / "summary.json"
    if not summary_file.exists():
        raise RuntimeError(
            f"the job wrote no summary (exit {child.returncode}):\n{child.stderr[-2000:]}"
        )
    return JobRun(json.loads(summary_file.read_text()), child)


@contextmanager
def work_dir(keep: bool = False) -> Iterator[Path]:
    """A scratch folder under bench/data/ (git-ignored), removed afterwards unless ``keep``."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if keep:
        yield Path(tempfile.mkdtemp(prefix="run-", dir=DATA_DIR))
        return
    with tempfile.TemporaryDirectory(prefix="run-", dir=DATA_DIR) as tmp:
        yield Path(tmp)


@dataclass(slots=True)
class Row:
    """One line of the table: a figure, what it is compared with, and the goal of issue 7."""

    benchmark: str
    figure: str
    baseline: str = "-"
    ratio: float | None = None
    target: str = "report"
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def at_least(ratio: float | None, goal: float) -> bool | None:
    return None if ratio is None or ratio != ratio else ratio >= goal


def at_most(value: float | None, goal: float) -> bool | None:
    return None if value is None or value != value else value <= goal


def below(value: float | None, goal: float) -> bool | None:
    return None if value is None or value != value else value < goal


def rate(value: float) -> str:
    """1234.5 -> '1,234/s'."""
    return f"{value:,.0f}/s"


def cpu(ms: float) -> str:
    return f"{ms:.2f} ms CPU/req"
