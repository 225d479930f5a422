"""One run at a time on an output folder and on a job's incremental state: a second run is
refused at once (exit 2) naming the first; the kernel frees the lock when a run dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from customer_import.contracts import ExitCode
from customer_import.errors import ConfigError
from customer_import.record.locks import LOCK_NAME, FolderLock
from customer_import.sandbox.testing import SandboxServer
from tests.conftest import (
    API_KEY,
    CREDENTIALS,
    MERCHANT_ID,
    assert_conservation,
    cli_env,
    run_cli,
    write_csv,
    write_job,
)

LINES = [f"L-{i:04d},First,Last,,,," for i in range(600)]


def _wait_for_lock(folder: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lock = folder / LOCK_NAME
        if lock.exists() and lock.read_text().startswith("pid"):
            return
        time.sleep(0.05)
    raise AssertionError(f"no run took {folder}")


def test_a_second_run_on_a_busy_output_folder_is_refused_and_the_first_finishes(
    tmp_path: Path,
) -> None:
    with SandboxServer(api_key=API_KEY, merchant_id=MERCHANT_ID, latency_ms=20) as slow:
        source = write_csv(tmp_path / "in.csv", *LINES)
        # at least 4 s, however fast the machine: the second run comes while the first sends
        job = write_job(tmp_path, source, base_url=slow.base_url, api="rate_limit = 150")
        command = [sys.executable, "-m", "customer_import", "run", str(job), "--no-progress"]
        with subprocess.Popen(
            command, env=cli_env(CREDENTIALS), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as first:
            _wait_for_lock(tmp_path / "out")
            second = run_cli("run", str(job), "--resume", "--no-progress", env=CREDENTIALS)
            first_out, first_err = first.communicate(timeout=60)

        assert second.returncode == ExitCode.NOTHING_DONE, second.stdout + second.stderr
        assert f"in use by another run (pid {first.pid}, started " in second.stderr
        assert first.returncode == ExitCode.OK, first_out + first_err
        assert slow.stats()["requests_total"] == len(LINES)  # nothing sent twice
    assert_conservation(tmp_path / "out", len(LINES))


def test_two_incremental_runs_of_one_job_cannot_share_its_state(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    source = write_csv(tmp_path / "in.csv", *LINES[:5])
    job = write_job(tmp_path, source, base_url=sandbox.base_url, extra='mode = "incremental"')
    assert run_cli("run", str(job), "--no-progress", env=CREDENTIALS).returncode == 0
    state = next((tmp_path / "state").iterdir())

    with FolderLock(state, "the incremental state"):  # as a run with another --out holds it
        other = run_cli(
            "run", str(job), "--out", str(tmp_path / "b"), "--no-progress", env=CREDENTIALS
        )
        reset = run_cli("state", "reset", str(job), "--all", env=CREDENTIALS)

    assert other.returncode == reset.returncode == ExitCode.NOTHING_DONE
    assert "the incremental state" in other.stderr and f"pid {os.getpid()}" in other.stderr
    assert "in use by another run" in reset.stderr


def test_a_lock_dies_with_its_process(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys; from pathlib import Path;"
        "from customer_import.record.locks import FolderLock;"
        f"FolderLock(Path({str(tmp_path)!r}), 'x').acquire(); os.kill(os.getpid(), signal.SIGKILL)"
    )
    killed = subprocess.run([sys.executable, "-c", code], check=False)
    assert killed.returncode == -signal.SIGKILL

    # No stale lock to clear by hand: this process takes it, and holds it against others.
    with (
        FolderLock(tmp_path, "the output folder"),
        pytest.raises(ConfigError, match="in use by another run"),
    ):
        FolderLock(tmp_path, "the output folder").acquire()
