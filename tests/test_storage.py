"""What reaches the disk: a write that fails stops the run (exit 3) with the path and the OS
error and leaves a resumable journal; outcomes are committed in groups, so that after a
kill -9 a resume sends again at most about twice the concurrency of records already applied."""

from __future__ import annotations

import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from customer_import.contracts import ExitCode
from customer_import.sandbox.testing import SandboxServer
from tests.conftest import (
    API_KEY,
    CREDENTIALS,
    MERCHANT_ID,
    assert_conservation,
    cli_env,
    write_csv,
    write_job,
)

LINES = [f"D-{i:05d},First{i},Last,d{i}@example.com,,Active," for i in range(3_000)]


def _limited_file_size(limit: int) -> None:
    """In the child: files may not grow past ``limit`` bytes (writes then fail with EFBIG)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _upserts(api: SandboxServer) -> int:
    return int(api.stats()["by_path"].get("/customers/add-update", 0))


def _committed(out: Path) -> set[str]:
    with sqlite3.connect(out / "journal.sqlite") as db:
        query = "SELECT external_id FROM outcomes WHERE status IN ('created', 'updated')"
        return {eid for (eid,) in db.execute(query)}


def test_a_journal_that_cannot_grow_stops_the_run_and_a_resume_finishes_it(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = write_job(tmp_path, write_csv(tmp_path / "in.csv", *LINES), base_url=sandbox.base_url)
    command = [sys.executable, "-m", "customer_import", "run", str(job), "--no-progress"]

    stopped = subprocess.run(
        command,
        env=cli_env(CREDENTIALS),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: _limited_file_size(256 * 1024),
        check=False,
    )

    assert stopped.returncode == ExitCode.STOPPED, stopped.stdout + stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert f"cannot write {tmp_path / 'out' / 'journal.sqlite'}" in stopped.stderr
    assert "--resume" in stopped.stderr
    first_requests = _upserts(sandbox)
    assert first_requests < len(LINES)  # sending stopped: it did not go on unrecorded
    committed = _committed(tmp_path / "out")

    resumed = subprocess.run(
        [*command, "--resume"], env=cli_env(CREDENTIALS), capture_output=True, text=True
    )

    assert resumed.returncode == ExitCode.OK, resumed.stdout + resumed.stderr
    assert len(sandbox.customers()) == len(LINES)
    assert_conservation(tmp_path / "out", len(LINES))
    sent_twice = _upserts(sandbox) - len(LINES)
    # Re-sent: exactly the records sent but not committed when the write failed, which the
    # run stopped at once (a group or two at concurrency 4), not thousands.
    assert sent_twice == first_requests - len(committed) <= 5 * 4


def test_after_kill_9_a_resume_sends_again_at_most_twice_the_concurrency(tmp_path: Path) -> None:
    concurrency = 16
    with SandboxServer(
        api_key=API_KEY, merchant_id=MERCHANT_ID, latency_ms=20, count_ids=True
    ) as api:
        lines = LINES[:1_500]
        source = write_csv(tmp_path / "in.csv", *lines)
        job = write_job(tmp_path, source, base_url=api.base_url)
        command = [sys.executable, "-m", "customer_import", "run", str(job), "--no-progress"]
        command += ["--concurrency", str(concurrency)]
        with subprocess.Popen(command, env=cli_env(CREDENTIALS)) as process:
            deadline = time.monotonic() + 30
            while _upserts(api) < 400 and time.monotonic() < deadline:
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)
        applied = {c["externalId"] for c in api.customers()}
        assert len(applied) < len(lines)  # killed mid-run
        api.reset_stats()

        resumed = subprocess.run(
            [*command, "--resume"], env=cli_env(CREDENTIALS), capture_output=True, text=True
        )

        assert resumed.returncode == ExitCode.OK, resumed.stdout + resumed.stderr
        resent = set(api.stats()["by_external_id"])
    assert len(resent & applied) <= 2 * concurrency
    assert_conservation(tmp_path / "out", len(lines))
