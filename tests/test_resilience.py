"""Runs that survive the real world (issue 5): rate limits, outages, resets, timeouts, races,
revoked keys, signals and kill -9, each against the sandbox's fault switches (or, where a server
cannot produce the case, an ``httpx.MockTransport``), each ending with a conservation check and
a comparison of what the server holds with what the input says it should hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from customer_import.config import ApiConfig
from customer_import.contracts import ExitCode, RunReport, SendItem, SendOutcome
from customer_import.errors import ConfigError, Interrupted
from customer_import.outputs.summary import summary_json
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.sandbox.testing import SandboxServer
from customer_import.send.client import make_client
from customer_import.send.flow import CircuitBreaker, Pacer
from customer_import.send.sender import RetryPolicy, Sender
from tests.conftest import (
    API_KEY,
    CREDENTIALS,
    MERCHANT_ID,
    api_job,
    assert_conservation,
    cli_env,
    load,
    read_csv,
    read_summary,
    run_main,
    write_csv,
)

Customer = dict[str, Any]
SENT = ("created", "updated")


# --- the input and what the server should hold afterwards ---


def record(i: int, prefix: str = "R", last: str | None = None) -> tuple[str, Customer]:
    """One valid CSV line and the customer the API must hold for it (normalised values)."""
    external_id = f"{prefix}-{i:04d}"
    last = last or f"Lovelace{i}"
    phone = f"(212) 555-01{i % 100:02d}" if i % 3 == 0 else ""
    status = "Active" if i % 2 == 0 else "Inactive"
    opt_out = "no" if i % 4 < 2 else "yes"
    line = f"{external_id},Ada{i},{last},ada.{i}@Example.COM,{phone},{status},{opt_out}"
    expected: Customer = {
        "externalId": external_id,
        "firstName": f"Ada{i}",
        "lastName": last,
        "email": f"ada.{i}@example.com",
        "active": status == "Active",
        "notificationOptions": {"notifyEmail": opt_out == "no"},
    }
    if phone:
        expected["phoneNumber"] = f"+121255501{i % 100:02d}"
    return line, expected


def valid_input(count: int, prefix: str = "R") -> tuple[list[str], dict[str, Customer]]:
    pairs = [record(i, prefix) for i in range(count)]
    return [line for line, _ in pairs], {c["externalId"]: c for _, c in pairs}


def mixed_input(count: int, prefix: str = "M") -> tuple[list[str], dict[str, Customer]]:
    """Valid records with two invalid ones and a repeated id (the last one wins) among them."""
    lines, expected = valid_input(count, prefix)
    lines.insert(5, f"{prefix}-bad1,Bad,Email,not-an-email,,Active,no")
    lines.insert(count // 2, f"{prefix}-bad2,,No first name,,,,")
    repeated, customer = record(7, prefix, last="Byron")
    lines.append(repeated)
    expected[customer["externalId"]] = customer
    return lines, expected


def stored(sandbox: SandboxServer) -> dict[str, Customer]:
    """The server's customers without their timestamps."""
    return {
        c["externalId"]: {k: v for k, v in c.items() if k not in ("createdAt", "updatedAt")}
        for c in sandbox.customers()
    }


# --- jobs and runs ---


def job_file(tmp_path: Path, lines: list[str], base_url: str, **api: object) -> Path:
    """``api_job``, invalid records allowed: some tests mix them in."""
    return api_job(tmp_path, lines, base_url, top="max_invalid_ratio = 1.0", **api)


def run(job: Path, **options: Any) -> RunReport:
    return run_job(load(job), RunOptions(environ=CREDENTIALS, **options))


def run_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command, credentials from the environment, in this process (``run_main``): what a
    test starts in the background, to signal or kill, is a process of its own (``started``)."""
    return run_main(*args, env=CREDENTIALS if env is None else env)


@contextlib.contextmanager
def started(*args: str) -> Iterator[subprocess.Popen[str]]:
    """The command in the background; killed if the test leaves it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "customer_import", *args, "--no-progress"],
        env=cli_env(CREDENTIALS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def add_updates(sandbox: SandboxServer) -> int:
    return int(sandbox.stats()["by_path"].get("/customers/add-update", 0))


def journaled(out_dir: Path) -> dict[int, tuple[str, str | None]]:
    """row -> (status, externalId) of every outcome committed to the run's journal."""
    path = out_dir / "journal.sqlite"
    if not path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        query = "SELECT row, status, external_id FROM outcomes WHERE row > 0"
        return {row: (status, eid) for row, status, eid in db.execute(query)}


def journaled_successes(out_dir: Path) -> int:
    """For polling a running job: its journal may not have its table yet."""
    try:
        return sum(status in SENT for status, _ in journaled(out_dir).values())
    except sqlite3.OperationalError:
        return 0


def results_by_row(out_dir: Path) -> dict[int, dict[str, str]]:
    return {int(r["row"]): r for r in read_csv(out_dir / "results.csv")}


def assert_all_sent(out_dir: Path, expected: dict[str, Customer]) -> None:
    """Every record of a valid-only input succeeded, and the summary says so."""
    assert_conservation(out_dir, len(expected))
    summary = read_summary(out_dir)
    assert (summary["status"], summary["rejected"], summary["pending"]) == ("completed", 0, 0)
    assert {r["status"] for r in results_by_row(out_dir).values()} <= set(SENT)


# --- rate limits: 429 never uses up a record's attempts ---


def test_429_with_retry_after_is_waited_out_without_using_up_attempts(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    lines, expected = valid_input(50)
    sandbox.set_faults(rate_limit=15)
    job = job_file(tmp_path, lines, sandbox.base_url, concurrency=8, max_attempts=1)

    report = run(job)

    assert sandbox.stats()["by_status"].get("429", 0) > 0
    assert stored(sandbox) == expected
    assert_all_sent(tmp_path / "out", expected)
    assert report.summary.rate_limited > 0
    # max_attempts = 1: a 429 counted as an attempt would have rejected the record
    assert {r["attempts"] for r in results_by_row(tmp_path / "out").values()} == {"1"}


class FakeApi:
    """The add-update endpoint over ``httpx.MockTransport``: the first ``limited`` requests are
    answered 429 with the given Retry-After (None: no header), the rest are upserted."""

    def __init__(self, limited: int, retry_after: Callable[[], str] | None) -> None:
        self.limited = limited
        self.retry_after = retry_after
        self.calls = 0
        self.customers: dict[str, Customer] = {}
        self.created_at: dict[str, str] = {}
        self.keys: set[str | None] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.keys.add(request.headers.get("x-api-key"))
        if self.calls <= self.limited:
            headers = {} if self.retry_after is None else {"Retry-After": self.retry_after()}
            return httpx.Response(429, headers=headers, json={"error": {"code": "RATE_LIMITED"}})
        body = json.loads(request.content)
        external_id = body["externalId"]
        created = external_id not in self.customers
        self.customers[external_id] = {**self.customers.get(external_id, {}), **body}
        now = datetime.now(UTC).isoformat()
        stamps = {"createdAt": self.created_at.setdefault(external_id, now), "updatedAt": now}
        return httpx.Response(
            201 if created else 200, json={**self.customers[external_id], **stamps}
        )


def _in_one_second() -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=1), usegmt=True)


@pytest.mark.parametrize(
    "retry_after",
    [None, lambda: "0", _in_one_second],
    ids=["no Retry-After", "Retry-After seconds", "Retry-After HTTP date"],
)
def test_429_is_retried_without_using_up_attempts_whatever_its_retry_after(
    tmp_path: Path, retry_after: Callable[[], str] | None
) -> None:
    lines, expected = valid_input(20)
    api = FakeApi(limited=8, retry_after=retry_after)
    job = job_file(tmp_path, lines, "http://127.0.0.1:9", max_attempts=1)

    report = run(job, transport=httpx.MockTransport(api))

    assert api.customers == expected
    assert api.calls == 20 + 8
    assert api.keys == {API_KEY}
    assert_all_sent(tmp_path / "out", expected)
    assert (report.summary.rate_limited, report.summary.retries) == (8, 0)
    assert {r["attempts"] for r in results_by_row(tmp_path / "out").values()} == {"1"}


def test_a_429_before_any_success_does_not_pin_the_pace_to_the_floor() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)

    pacer.on_rate_limited(retry_after=1)  # a run's first answer: nothing measured yet

    assert pacer.rate is None  # it was 1 request/s, and 0.5 %/s takes 15 min back to 100/s
    for _ in range(100):  # then the server admits 50 a second
        clock.now += 0.02
        pacer.on_success()
    pacer.on_rate_limited(retry_after=1)
    assert pacer.rate == pytest.approx(0.95 * 50, rel=0.03)


def test_a_429_early_in_a_run_measures_over_the_time_seen_not_a_whole_window() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    for _ in range(20):  # 200 a second, for the first 0.1 s of the run
        clock.now += 0.005
        pacer.on_success()

    pacer.on_rate_limited(retry_after=1)

    assert pacer.rate == pytest.approx(0.95 * 200, rel=0.1)  # was 0.95 * 20 / 2 s = 9.5


def test_a_spell_of_nothing_but_429s_does_not_grind_the_pace_down() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    for _ in range(100):  # 50 a second admitted
        clock.now += 0.02
        pacer.on_success()
    pacer.on_rate_limited(retry_after=1)
    paced = pacer.rate
    assert paced == pytest.approx(47.5, rel=0.02)

    for _ in range(30):  # a quota window: only 429s for 30 s, one cut's cooldown apart
        clock.now += 1
        pacer.on_rate_limited(retry_after=1)

    assert pacer.rate == paced  # was 1.0: cut 5 % a second as successes left the window


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- transient faults: retried, and the server ends with the right data ---


def test_a_burst_of_503s_is_retried_through(tmp_path: Path, sandbox: SandboxServer) -> None:
    lines, expected = valid_input(30)
    sandbox.set_faults(fail_first=12)
    # more attempts than the burst is long: no record can run out, whoever meets the 503s
    report = run(job_file(tmp_path, lines, sandbox.base_url, max_attempts=13))

    assert sandbox.stats()["by_status"]["503"] == 12
    assert stored(sandbox) == expected
    assert_all_sent(tmp_path / "out", expected)
    assert report.summary.retries == 12
    assert report.summary.requests == 30 + 12


def test_random_500s_and_503s_are_retried(tmp_path: Path, sandbox: SandboxServer) -> None:
    lines, expected = valid_input(60)
    sandbox.set_faults(fail_rate=0.3, seed=3)
    report = run(job_file(tmp_path, lines, sandbox.base_url, max_attempts=12))

    by_status = sandbox.stats()["by_status"]
    failures = by_status.get("500", 0) + by_status.get("503", 0)
    assert failures > 0
    assert stored(sandbox) == expected
    assert_all_sent(tmp_path / "out", expected)
    assert report.summary.retries == failures
    assert {r["status"] for r in results_by_row(tmp_path / "out").values()} == {"created"}


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_connection_resets_before_and_after_the_write_end_with_the_right_data(
    tmp_path: Path, transport: str
) -> None:
    lines, expected = valid_input(60)
    with SandboxServer(
        api_key=API_KEY, merchant_id=MERCHANT_ID, reset_rate=0.3, seed=4, count_ids=True
    ) as sandbox:
        job = job_file(tmp_path, lines, sandbox.base_url, max_attempts=12, transport=transport)

        report = run(job)

        stats = sandbox.stats()
        assert stored(sandbox) == expected
    assert stats["by_status"]["dropped"] == report.summary.retries > 0
    assert stats["upserts"]["created"] == 60  # each customer created exactly once
    assert_all_sent(tmp_path / "out", expected)
    results = results_by_row(tmp_path / "out")
    # A retry of a write whose answer was lost finds the customer: "updated" (clarifications).
    updated = [r for r in results.values() if r["status"] == "updated"]
    assert 0 < len(updated) <= stats["upserts"]["updated"]
    assert all(stats["by_external_id"][r["externalId"]] > 1 for r in updated)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        ({"reset_rate": 1.0}, "connection error: "),
        ({"hang_rate": 1.0, "hang_ms": 800}, "timeout: "),
    ],
    ids=["reset", "hang"],
)
def test_a_transport_reject_says_whether_the_connection_was_lost_or_timed_out(
    tmp_path: Path, transport: str, faults: dict[str, Any], reason: str, sandbox: SandboxServer
) -> None:
    lines, _ = valid_input(2)
    sandbox.set_faults(seed=1, **faults)
    job = job_file(
        tmp_path, lines, sandbox.base_url, max_attempts=2, timeout=0.3, transport=transport
    )
    run(job)

    rejects = read_csv(tmp_path / "out" / "rejects.csv")
    assert [r["_stage"] for r in rejects] == ["transport", "transport"]
    for reject in rejects:
        assert reject["_reason"].startswith(reason), reject["_reason"]
        assert reject["_reason"].endswith("(after 2 attempts)")
    assert_conservation(tmp_path / "out", 2)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_timeouts_are_retried_and_a_late_write_is_not_doubled(
    tmp_path: Path, transport: str, sandbox: SandboxServer
) -> None:
    lines, expected = valid_input(24)
    sandbox.set_faults(hang_rate=0.2, hang_ms=1000, seed=6)
    job = job_file(
        tmp_path, lines, sandbox.base_url, timeout=0.5, max_attempts=12, transport=transport
    )

    report = run(job)

    assert stored(sandbox) == expected
    assert sandbox.stats()["upserts"]["created"] == 24
    assert_all_sent(tmp_path / "out", expected)
    assert report.summary.retries > 0


def test_409_races_are_retried_until_the_write_lands(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    lines, expected = valid_input(40)
    sandbox.set_faults(conflict_rate=0.3, seed=8)
    report = run(job_file(tmp_path, lines, sandbox.base_url, max_attempts=12))

    stats = sandbox.stats()
    assert stored(sandbox) == expected
    assert stats["by_status"]["409"] == report.summary.retries > 0
    assert stats["upserts"] == {"created": 40, "updated": 0}
    assert_all_sent(tmp_path / "out", expected)
    assert {r["status"] for r in results_by_row(tmp_path / "out").values()} == {"created"}


# --- fatal answers and outages: stop, keep the rest pending, resume ---


def test_a_key_revoked_mid_run_aborts_with_exit_3_and_resume_completes(tmp_path: Path) -> None:
    lines, expected = mixed_input(200)
    db = tmp_path / "api.sqlite"
    with SandboxServer(api_key=API_KEY, merchant_id=MERCHANT_ID, db=db, latency_ms=20) as sandbox:
        port = sandbox.port
        job = job_file(tmp_path, lines, sandbox.base_url)
        with started("run", str(job)) as process:
            wait_until(lambda: add_updates(sandbox) >= 30, "the first requests")
            sandbox.revoke_key()
            stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == ExitCode.STOPPED, stdout + stderr
        assert "CUSTOMERS_API_KEY" in stdout + stderr
        assert "--resume" in stdout + stderr

    aborted = read_summary(tmp_path / "out")
    assert aborted["status"] == "aborted"
    assert aborted["rejected_by_stage"] == {"validation": 2}  # nothing rejected for the 401
    sent = aborted["created"] + aborted["updated"]
    assert sent > 0
    assert aborted["pending"] == len(lines) - sent - aborted["rejected"] - aborted["duplicate"]

    # the key works again: a new server on the same URL and database
    with SandboxServer(
        api_key=API_KEY, merchant_id=MERCHANT_ID, db=db, port=port, count_ids=True
    ) as healthy:
        resumed = run_command("run", str(job), "--resume")
        assert resumed.returncode == ExitCode.REJECTS, resumed.stdout + resumed.stderr
        # only what had no outcome (when the abort came before the repeated id was decided,
        # its superseded record is pending too, and becomes a duplicate without being sent)
        undecided = 1 - aborted["duplicate"]
        assert add_updates(healthy) == aborted["pending"] - undecided
        assert stored(healthy) == expected
    assert_conservation(tmp_path / "out", len(lines))
    final = read_summary(tmp_path / "out")
    assert (final["status"], final["pending"], final["rejected"]) == ("completed", 0, 2)


def test_a_long_outage_opens_the_breaker_aborts_with_exit_3_and_resume_completes(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    lines, expected = valid_input(200)
    with SandboxServer(api_key=API_KEY, merchant_id=MERCHANT_ID, fail_rate=1.0, seed=1) as down:
        job = job_file(tmp_path, lines, down.base_url, max_outage_s=2)
        result = run_command("run", str(job), "--no-progress")
        assert result.returncode == ExitCode.STOPPED, result.stdout + result.stderr
        assert "failed every request" in result.stdout + result.stderr
        assert down.customers() == []

    aborted = read_summary(tmp_path / "out")
    assert aborted["status"] == "aborted"
    # Records that ran out of attempts as the outage began are pending again, not rejected.
    assert aborted["rejected"] == 0
    assert aborted["pending"] == 200
    assert "pending again" in aborted["message"]

    # the base URL may change on resume (it is how a wrong one is fixed)
    resumed = run_command("run", str(job), "--resume", "--base-url", sandbox.base_url)
    assert resumed.returncode in (ExitCode.OK, ExitCode.REJECTS), resumed.stderr
    assert add_updates(sandbox) == 200
    assert stored(sandbox) == expected
    assert read_csv(tmp_path / "out" / "rejects.csv") == []
    assert_conservation(tmp_path / "out", 200)
    assert read_summary(tmp_path / "out")["status"] == "completed"


def test_an_outage_during_a_resume_counts_only_the_resumes_own_records(tmp_path: Path) -> None:
    """When an outage puts every transport reject back to pending, the first attempt's too,
    the resume's ``this_attempt.records`` is what it sent: not that less the first attempt's."""
    lines, _ = valid_input(20)
    job = job_file(
        tmp_path,
        lines,
        "http://127.0.0.1:9",
        concurrency=1,
        max_attempts=1,
        breaker_failures=3,
        breaker_probe_s=0.05,
        max_outage_s=0.3,
    )

    def answers(*statuses: int) -> httpx.MockTransport:
        script = iter(statuses)

        def answer(request: httpx.Request) -> httpx.Response:  # a success echoes the customer
            return httpx.Response(next(script, statuses[-1]), content=request.content)

        return httpx.MockTransport(answer)

    # Two 503s reject two records (one attempt each), then a 401 stops the run.
    first = run(job, transport=answers(503, 503, 401))
    assert (first.status, first.summary.rejected_by_stage) == ("aborted", {"transport": 2})

    resumed = run(job, resume=True, transport=answers(201, 201, 201, 201, 503))

    assert resumed.status == "aborted"
    assert "pending again" in (resumed.message or "")
    summary = summary_json(resumed.summary)
    assert (summary["created"], summary["rejected"], summary["pending"]) == (4, 0, 16)
    assert summary["this_attempt"]["records"] == 4
    assert_conservation_so_far(tmp_path / "out", 20)


def test_the_job_file_sets_the_breaker_threshold_and_its_probe_interval(tmp_path: Path) -> None:
    lines, _ = valid_input(100)
    with SandboxServer(api_key=API_KEY, merchant_id=MERCHANT_ID, fail_rate=1.0, seed=1) as down:
        job = job_file(
            tmp_path, lines, down.base_url, max_outage_s=1, breaker_failures=5, breaker_probe_s=60
        )
        report = run(job)
        sent = add_updates(down)
    assert report.status == "aborted"
    # Five failures in a row open it; the other connections' requests in flight end; no probe
    # is due within the second the outage may last (the default, 50 in a row, sends over 50).
    assert 5 <= sent <= 5 + 4
    assert_conservation_so_far(tmp_path / "out", 100)


# --- signals, kill -9 and resume ---


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, ExitCode.SIGTERM), (signal.SIGINT, ExitCode.SIGINT)],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_signal_mid_run_stops_cleanly_and_resume_sends_only_the_rest(
    tmp_path: Path, signum: int, code: int
) -> None:
    lines, expected = valid_input(200)
    with SandboxServer(
        api_key=API_KEY, merchant_id=MERCHANT_ID, latency_ms=30, count_ids=True
    ) as sandbox:
        job = job_file(tmp_path, lines, sandbox.base_url)
        with started("run", str(job)) as process:
            wait_until(lambda: add_updates(sandbox) >= 20, "the first requests")
            process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == code, stdout + stderr

        interrupted = read_summary(tmp_path / "out")
        assert interrupted["status"] == "interrupted"
        assert 0 < interrupted["created"] < 200
        assert interrupted["pending"] == 200 - interrupted["created"]
        # requests in flight were let finish and recorded: the server wrote nothing unrecorded
        assert sandbox.stats()["upserts"]["created"] == interrupted["created"]

        sandbox.reset_stats()
        resumed = run_command("run", str(job), "--resume")
        assert resumed.returncode == ExitCode.OK, resumed.stdout + resumed.stderr
        stats = sandbox.stats()
        assert stored(sandbox) == expected
    assert add_updates_of(stats) == interrupted["pending"]
    assert set(stats["by_external_id"].values()) == {1}
    assert_all_sent(tmp_path / "out", expected)
    assert read_summary(tmp_path / "out")["created"] == 200


def test_sigterm_during_an_outage_stops_at_once_not_when_the_outage_limit_is_reached(
    tmp_path: Path,
) -> None:
    lines, _ = valid_input(100)
    with SandboxServer(api_key=API_KEY, merchant_id=MERCHANT_ID, fail_rate=1.0, seed=1) as down:
        # 8 workers: each probe (every 5 s) frees one, so waiting for probes takes over 30 s
        job = job_file(tmp_path, lines, down.base_url, max_outage_s=600, concurrency=8)
        with started("run", str(job)) as process:
            # 50 failures in a row open the breaker: workers wait for a probe, nothing in flight
            wait_until(lambda: add_updates(down) >= 50, "the breaker to open")
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=30)  # not 600 s
        assert process.returncode == ExitCode.SIGTERM, stdout + stderr

    summary = read_summary(tmp_path / "out")
    assert summary["status"] == "interrupted"
    assert summary["pending"] == 100 - summary["rejected"] > 50
    assert_conservation_so_far(tmp_path / "out", 100)


def assert_conservation_so_far(out_dir: Path, records: int) -> None:
    """A stopped run: every record is in results, in rejects or pending, once."""
    summary = read_summary(out_dir)
    rows = [int(r["row"]) for r in read_csv(out_dir / "results.csv")]
    rows += [int(r["_row"]) for r in read_csv(out_dir / "rejects.csv")]
    assert len(rows) == len(set(rows)) == records - summary["pending"]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(429, headers={"Retry-After": "500"}),  # a quota window: all pause
        httpx.Response(429, headers={"Retry-After": "2"}),  # this request waits
        httpx.Response(503),  # backing off, or waiting for a probe once the breaker is open
    ],
    ids=["long Retry-After", "short Retry-After", "outage"],
)
def test_stop_does_not_wait_for_pauses_only_for_requests_in_flight(answer: httpx.Response) -> None:
    outcomes: list[SendOutcome] = []
    requests = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return answer

    async def main() -> None:
        client = make_client(
            "http://api.test", {}, concurrency=4, timeout=5, transport=httpx.MockTransport(handler)
        )
        async with client:
            sender = Sender(
                client,
                concurrency=4,
                policy=RetryPolicy(max_attempts=100, base_delay=2, max_delay=2),
                on_outcome=outcomes.append,
                breaker=CircuitBreaker(threshold=4, probe_every_s=600, max_outage_s=600),
            )
            running = asyncio.create_task(sender.run(items(20)))
            # one 429 pauses everyone; four 503s open the breaker
            while requests < (4 if answer.status_code == 503 else 1):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # every worker is now waiting, none sending
            sender.stop(Interrupted(signal.SIGTERM))
            with pytest.raises(Interrupted):
                await asyncio.wait_for(running, timeout=10)  # not 600 or 3600 s

    asyncio.run(main())
    assert outcomes == []  # every record is pending for a resume


async def items(count: int) -> AsyncIterator[list[SendItem]]:
    yield [SendItem(i + 1, f"id-{i}", b'{"externalId":"x","firstName":"y"}') for i in range(count)]


def add_updates_of(stats: dict[str, Any]) -> int:
    return int(stats["by_path"].get("/customers/add-update", 0))


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    lines, expected = mixed_input(400)
    out = tmp_path / "out"
    with SandboxServer(
        api_key=API_KEY, merchant_id=MERCHANT_ID, latency_ms=30, count_ids=True
    ) as slow:
        job = job_file(tmp_path, lines, slow.base_url)
        with started("run", str(job)) as process:
            # at most 4 requests per 30 ms: the run cannot be over before this is true
            wait_until(lambda: journaled_successes(out) >= 20, "outcomes in the journal")
            process.kill()
            process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL

        before = journaled(out)
        succeeded = {eid for status, eid in before.values() if status in SENT}
        assert len(succeeded) < len(expected)  # the kill came mid-run
        assert not (out / "summary.json").exists()
        assert (out / "journal.sqlite-wal").exists()
        assert_owner_only(out)  # the journal's WAL files too
        slow.reset_stats()

        resumed = run_command("run", str(job), "--resume")
        assert resumed.returncode == ExitCode.REJECTS, resumed.stdout + resumed.stderr
        stats = slow.stats()
        assert stored(slow) == expected

        # Nothing journaled as succeeded is sent again; every other valid id is sent.
        resent = set(stats["by_external_id"])
        assert not resent & succeeded
        assert resent == set(expected) - succeeded  # answered after the last flush: sent again

    run(job, out_dir=tmp_path / "uninterrupted", base_url=sandbox.base_url)
    assert_conservation(out, len(lines))
    assert_same_outcomes(out, tmp_path / "uninterrupted")


def assert_same_outcomes(resumed: Path, uninterrupted: Path) -> None:
    """Status per row (created and updated count alike), rejects and summary counts agree."""

    def statuses(out_dir: Path) -> dict[int, str]:
        return {
            row: "sent" if r["status"] in SENT else r["status"]
            for row, r in results_by_row(out_dir).items()
        }

    def rejects(out_dir: Path) -> list[dict[str, str]]:
        return read_csv(out_dir / "rejects.csv")

    def counts(out_dir: Path) -> dict[str, Any]:
        s = read_summary(out_dir)
        keep = ("status", "rows", "duplicate", "rejected", "rejected_by_stage", "pending")
        return {"sent": s["created"] + s["updated"], **{k: s[k] for k in keep}}

    assert statuses(resumed) == statuses(uninterrupted)
    assert rejects(resumed) == rejects(uninterrupted)
    assert counts(resumed) == counts(uninterrupted)
    detail = {row: r["detail"] for row, r in results_by_row(resumed).items()}
    assert detail == {row: r["detail"] for row, r in results_by_row(uninterrupted).items()}


@pytest.mark.parametrize("change", ["input", "mapping", "duplicates"])
def test_resume_is_refused_with_exit_2_when_the_input_or_job_changed(
    tmp_path: Path, sandbox: SandboxServer, change: str
) -> None:
    lines, _ = valid_input(5)
    job = job_file(tmp_path, lines, sandbox.base_url)
    sandbox.revoke_key()
    assert run(job).status == "aborted"  # an unfinished run to resume
    requests = add_updates(sandbox)
    if change == "input":
        write_csv(tmp_path / "in.csv", *lines, record(99)[0])
    elif change == "mapping":
        text = job.read_text(encoding="utf-8").replace('lastName = "last"', 'lastName = "id"')
        job.write_text(text, encoding="utf-8")
    else:
        job.write_text('duplicates = "first"\n' + job.read_text(encoding="utf-8"))

    result = run_command("run", str(job), "--resume")

    assert result.returncode == ExitCode.NOTHING_DONE
    assert "--resume refused" in result.stderr
    assert add_updates(sandbox) == requests  # the refused resume sent nothing
    assert read_summary(tmp_path / "out")["status"] == "aborted"  # left as it was


# --- security ---


def test_the_api_key_is_in_no_output_stdout_stderr_or_log(tmp_path: Path) -> None:
    lines, _ = mixed_input(30)
    secret = "sk_live_never-print-me-4711"
    env = {"CUSTOMERS_API_KEY": secret, "CUSTOMERS_MERCHANT_ID": MERCHANT_ID}
    captured = []
    with SandboxServer(
        api_key=secret, merchant_id=MERCHANT_ID, fail_rate=0.3, reset_rate=0.2, seed=2
    ) as sandbox:
        job = job_file(tmp_path, lines, sandbox.base_url, max_attempts=2)
        for log_format in ("text", "json"):
            result = run_command("run", str(job), "--restart", "--log-format", log_format, env=env)
            assert result.returncode == ExitCode.REJECTS, result.stderr
            captured += [result.stdout, result.stderr]
        sandbox.revoke_key()
        aborted = run_command("run", str(job), "--out", str(tmp_path / "revoked"), env=env)
        assert aborted.returncode == ExitCode.STOPPED
        captured += [aborted.stdout, aborted.stderr]
    refused = run_command(
        "run", str(job), "--out", str(tmp_path / "refused"), "--base-url", "http://api.example",
        env=env,
    )  # fmt: skip
    assert refused.returncode == ExitCode.NOTHING_DONE
    captured += [refused.stdout, refused.stderr]

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"results.csv", "rejects.csv", "summary.json"}
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    for text in captured:
        assert secret not in text


@pytest.mark.parametrize(
    ("base_url", "allow", "refused"),
    [
        ("http://api.example.com", False, True),
        ("http://10.0.0.7:3156", False, True),
        ("http://api.example.com", True, False),
        ("https://api.example.com", False, False),
        ("http://127.0.0.1:3156", False, False),
        ("http://[::1]:3156", False, False),
        ("http://localhost:3156", False, False),
    ],
)
def test_plain_http_is_refused_to_any_host_but_this_machine_unless_allowed(
    tmp_path: Path, base_url: str, allow: bool, refused: bool
) -> None:
    lines, expected = valid_input(3)
    api = FakeApi(limited=0, retry_after=None)
    job = job_file(tmp_path, lines, base_url, allow_insecure_http=allow)
    options = {"transport": httpx.MockTransport(api)}  # nothing leaves this process

    if refused:
        with pytest.raises(ConfigError, match="allow_insecure_http"):
            run(job, **options)
        assert api.calls == 0
    else:
        assert run(job, **options).status == "completed"
        assert api.customers == expected


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_tls_certificates_are_always_verified(transport: Literal["aiohttp", "httpx"]) -> None:
    assert not {"verify", "ssl", "tls", "insecure", "verify_tls"} & set(ApiConfig.model_fields)

    async def context() -> ssl.SSLContext:
        client = make_client(
            "https://api.example.com", {}, concurrency=1, timeout=1, transport_name=transport
        )
        async with client:
            found = getattr(client._transport, "ssl_context", None)
            pool = getattr(client._transport, "_pool", None)
            found = found or getattr(pool, "_ssl_context", None)
            assert isinstance(found, ssl.SSLContext)
            return found

    tls = asyncio.run(context())
    assert tls.verify_mode is ssl.CERT_REQUIRED
    assert tls.check_hostname


def assert_owner_only(out_dir: Path) -> None:
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_output_files_are_readable_by_the_owner_only(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    lines, _ = mixed_input(20)
    previous = os.umask(0)  # a permissive umask must not leak into the files
    try:
        job = job_file(tmp_path, lines, sandbox.base_url)
        assert run(job).status == "completed"
        sandbox.revoke_key()
        assert run(job, out_dir=tmp_path / "aborted").status == "aborted"
        assert run(job, out_dir=tmp_path / "dry", dry_run=True).status == "completed"
    finally:
        os.umask(previous)
    for out_dir in ("out", "aborted", "dry"):
        assert_owner_only(tmp_path / out_dir)


# A run whose reads after its first batch take ``sys.argv[1]`` seconds: a read is under way
# when the run stops. It prints "slow read" as each slow read begins.
_SLOW_READS = """
import sys, time
from customer_import import cli
from customer_import.source.csv_file import _CsvBackend

batches = _CsvBackend.batches

def slow_batches(self, select, names, first):
    for k, batch in enumerate(batches(self, select, names, first)):
        if first == 1_000 and k:  # the run's batches after its first: the pre-pass is over
            print("slow read", flush=True)
            time.sleep(float(sys.argv[1]))
        yield batch

_CsvBackend.batches = slow_batches
sys.exit(cli.main(sys.argv[2:]))
"""


def test_a_second_ctrl_c_while_the_run_winds_down_does_not_cut_it_short(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """The first stop (here a refused key) ends the sending; the run then waits for the batch
    being read before it closes the file. A Ctrl-C in that wait used to raise
    KeyboardInterrupt there: a traceback, no report, and the file closed under the reader."""
    lines, _ = valid_input(3_000)
    script = tmp_path / "slow_reads.py"
    script.write_text(_SLOW_READS, encoding="utf-8")
    sandbox.revoke_key()
    job = job_file(tmp_path, lines, sandbox.base_url)
    process = subprocess.Popen(
        [sys.executable, str(script), "3", "run", str(job), "--no-progress"],
        env=cli_env(CREDENTIALS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "slow read\n"
        wait_until(lambda: add_updates(sandbox) >= 1, "the refused request")
        time.sleep(0.5)  # the run has stopped sending and waits for the read
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == ExitCode.STOPPED, stdout + stderr
    assert "Traceback" not in stderr
    assert "the run is already finishing" in stderr
    summary = read_summary(tmp_path / "out")
    assert (summary["status"], summary["pending"]) == ("aborted", 3_000)
