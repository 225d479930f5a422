"""Runs against an API that misbehaves (issue 17), end to end against the sandbox's switches
(set on the shared sandbox with ``set_faults``: the next test's reset drops them):
a 2xx that is not the customer, a redirect, a proxy's HTML pages, a Retry-After of hours, an
answer dripped a byte at a time, an API never reached, and a shared quota's storm of 429s with
5xx and resets. Each asserts what the user sees (exit code, message, summary.json, the files)
and that nothing is recorded as a success unless the API itself answered.

The same cases are unit-tested through ``httpx.MockTransport`` in ``test_api_answers.py``.
"""

from __future__ import annotations

import re
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from customer_import.config import load_job
from customer_import.contracts import ExitCode, RunReport
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.sandbox.testing import SandboxServer
from tests.conftest import (
    CREDENTIALS,
    api_job,
    assert_conservation,
    read_csv,
    read_summary,
    run_cli,
)

Customer = dict[str, Any]
SUCCESSES = ("created", "updated")


def customers(count: int, prefix: str = "M") -> tuple[list[str], dict[str, Customer]]:
    """``count`` valid CSV lines, and the customers the API must hold for them."""
    lines, expected = [], {}
    for i in range(count):
        external_id = f"{prefix}-{i:05d}"
        lines.append(f"{external_id},Ada{i},Lovelace,ada.{i}@example.com,,Active,no")
        expected[external_id] = {
            "externalId": external_id,
            "firstName": f"Ada{i}",
            "lastName": "Lovelace",
            "email": f"ada.{i}@example.com",
            "active": True,
            "notificationOptions": {"notifyEmail": True},
        }
    return lines, expected


job_file = api_job


def run(job: Path, *, resume: bool = False) -> RunReport:
    """The run in this process: the library call the command makes (cheaper than a process;
    the command prints ``report.message``, the same text as summary.json's ``message``)."""
    return run_job(load_job(job), RunOptions(environ=CREDENTIALS, resume=resume))


def command(job: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``customer-import run JOB`` as a user runs it: what it prints is what the user sees."""
    return run_cli("run", str(job), "--no-progress", env=CREDENTIALS, timeout=timeout)


def assert_stopped(report: RunReport, *phrases: str) -> None:
    """Exit 3, and a message (printed, and in summary.json) that says each of ``phrases``."""
    assert report.exit_code is ExitCode.STOPPED, report.message
    assert report.message is not None
    for phrase in phrases:
        assert phrase in report.message
    assert read_summary(report.out_dir)["message"] == report.message


def stored(server: SandboxServer) -> dict[str, Customer]:
    """The server's customers without their timestamps."""
    return {
        c["externalId"]: {k: v for k, v in c.items() if k not in ("createdAt", "updatedAt")}
        for c in server.customers()
    }


def successes(out_dir: Path) -> list[dict[str, str]]:
    return [r for r in read_csv(out_dir / "results.csv") if r["status"] in SUCCESSES]


def assert_stopped_with_nothing_done(out_dir: Path, records: int) -> dict[str, Any]:
    """A run that stopped (exit 3) before any record had an outcome: all of them pending."""
    summary = read_summary(out_dir)
    assert summary["status"] == "aborted"
    assert (summary["created"], summary["updated"], summary["rejected"]) == (0, 0, 0)
    assert summary["pending"] == summary["rows"] == records
    assert successes(out_dir) == []
    return summary


# --- a 2xx whose body is not the customer ---


def test_html_pages_answered_200_are_retried_and_only_the_apis_answers_count(
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    lines, expected = customers(40)
    sandbox.set_faults(non_json_2xx=0.3, seed=4)
    report = run(job_file(tmp_path, lines, sandbox.base_url, max_attempts=12))

    stats = sandbox.stats()
    assert stored(sandbox) == expected
    pages = stats["faults"]["non_json_2xx"]
    assert pages > 0
    assert report.exit_code is ExitCode.OK
    assert report.summary.retries == pages
    assert report.summary.requests == 40 + pages
    assert_conservation(tmp_path / "out", 40)
    # the pages wrote nothing: every record was created by the API's own answer
    assert {r["status"] for r in read_csv(tmp_path / "out" / "results.csv")} == {"created"}
    assert stats["upserts"] == {"created": 40, "updated": 0}


def test_an_api_answering_only_html_200_has_every_record_rejected_asking_about_base_url(
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    lines, _ = customers(4)
    sandbox.set_faults(non_json_2xx=1.0)
    report = run(job_file(tmp_path, lines, sandbox.base_url, max_attempts=2))

    assert sandbox.customers() == []
    assert report.exit_code is ExitCode.REJECTS
    out = tmp_path / "out"
    assert_conservation(out, 4)
    assert successes(out) == []
    assert read_summary(out)["rejected_by_stage"] == {"transport": 4}
    for reject in read_csv(out / "rejects.csv"):
        assert "HTTP 200 whose body is not the customer" in reject["_reason"]
        assert "text/html" in reject["_reason"]
        assert "is api.base_url the API?" in reject["_reason"]


# --- a redirect ---


def test_a_redirect_stops_the_command_with_exit_3_naming_the_location(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    location = "https://api.example.com/v2/customers/add-update"
    lines, _ = customers(10)
    sandbox.set_faults(redirect=location)
    done = command(job_file(tmp_path, lines, sandbox.base_url))

    requests = sandbox.stats()["faults"]["redirect"]
    shown = done.stdout + done.stderr
    assert done.returncode == ExitCode.STOPPED, shown
    assert f"HTTP 301: the API answered with a redirect to {location}" in shown
    assert "--resume" in shown
    assert requests <= 4  # the requests in flight when the first answer came, no more
    summary = assert_stopped_with_nothing_done(tmp_path / "out", 10)
    assert location in summary["message"]


def test_a_307_stops_the_run_too(sandbox: SandboxServer, tmp_path: Path) -> None:
    lines, _ = customers(10)
    sandbox.set_faults(redirect="http://127.0.0.1:1/elsewhere", redirect_status=307)
    report = run(job_file(tmp_path, lines, sandbox.base_url))

    assert_stopped(report, "HTTP 307", "redirect to http://127.0.0.1:1/elsewhere")
    assert_stopped_with_nothing_done(tmp_path / "out", 10)


# --- something in front of the API ---


def test_a_proxy_answering_html_400s_stops_the_run_something_in_front_of_the_api(
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    lines, _ = customers(60)
    sandbox.set_faults(html_4xx=1.0)
    report = run(job_file(tmp_path, lines, sandbox.base_url))

    requests = sandbox.stats()["faults"]["html_4xx"]
    assert_stopped(report, "something in front of the API is answering", "HTTP 400 text/html")
    assert 20 <= requests <= 24  # 20 answers, and the requests in flight at the 20th
    summary = read_summary(tmp_path / "out")
    assert summary["status"] == "aborted"
    assert (summary["created"], summary["updated"]) == (0, 0)
    assert successes(tmp_path / "out") == []
    assert summary["pending"] + summary["rejected"] == 60


def test_records_the_proxy_answered_are_pending_and_sent_by_the_resume(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    lines, expected = customers(30)
    sandbox.set_faults(html_4xx=1.0)
    job = job_file(tmp_path, lines, sandbox.base_url)
    assert run(job).exit_code is ExitCode.STOPPED

    sandbox.set_faults()  # the proxy fixed: the API itself answers
    resumed = run(job, resume=True)

    assert stored(sandbox) == expected
    assert resumed.exit_code is ExitCode.OK, resumed.message
    assert_conservation(tmp_path / "out", 30)


# --- a Retry-After beyond max_rate_limited_s ---


@pytest.mark.parametrize(
    ("retry_after", "wait_s"),
    [("3600", 3600.0), ("date+7200", 7200.0), ("99999999999999999999", None)],
    ids=["an hour", "an HTTP date", "1e20 s"],
)
def test_a_retry_after_beyond_max_rate_limited_s_stops_the_run_at_once_saying_when(
    sandbox: SandboxServer, tmp_path: Path, retry_after: str, wait_s: float | None
) -> None:
    lines, _ = customers(10)
    sandbox.set_faults(rate_limited_share=1.0, retry_after=retry_after)
    job = job_file(tmp_path, lines, sandbox.base_url, max_rate_limited_s=60)
    started = datetime.now(UTC)
    report = run(job)

    assert_stopped(report, "(Retry-After)", "max_rate_limited_s = 60", "--resume")
    assert report.message is not None
    when = re.search(r"takes requests again from (\S+?);", report.message)
    if wait_s is None:  # no date to give for a wait of three thousand billion years
        assert when is None and "a wait no API means" in report.message
    else:
        assert when, report.message
        expected = started + timedelta(seconds=wait_s)
        assert abs((datetime.fromisoformat(when[1]) - expected).total_seconds()) < 120
    summary = assert_stopped_with_nothing_done(tmp_path / "out", 10)
    assert summary["duration_s"] < 30  # at once: not after the wait, nor after 60 s of 429s


# --- an answer dripped a byte at a time ---


def test_an_answer_dripped_past_the_timeout_is_cut_at_the_deadline_and_retried(
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    lines, expected = customers(16)
    # a customer's answer is about 200 bytes: 20 ms a byte holds it about 4 s, past the 0.8 s
    # timeout (not shorter: on a loaded machine an answer not dripped could take 0.3 s)
    sandbox.set_faults(drip_ms=20, drip_rate=0.25, seed=2)
    job = job_file(tmp_path, lines, sandbox.base_url, timeout=0.8, max_attempts=12)

    report = run(job)

    assert stored(sandbox) == expected
    dripped = sandbox.stats()["faults"]["drip"]
    assert dripped > 0
    assert report.exit_code is ExitCode.OK
    assert report.summary.retries == dripped
    p99 = report.summary.latency_ms.p99
    assert p99 is not None and p99 < 2000  # no request was held to its 4 s answer's end
    assert_conservation(tmp_path / "out", 16)


def test_an_api_that_drips_every_answer_has_its_records_rejected_no_whole_answer_within(
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    lines, _ = customers(2)
    sandbox.set_faults(drip_ms=10)
    job = job_file(tmp_path, lines, sandbox.base_url, timeout=0.2, max_attempts=2)

    report = run(job)

    assert report.exit_code is ExitCode.REJECTS
    out = tmp_path / "out"
    assert_conservation(out, 2)
    assert successes(out) == []
    for reject in read_csv(out / "rejects.csv"):
        assert reject["_stage"] == "transport"
        assert "no whole answer within 0.2 s" in reject["_reason"], reject["_reason"]
    assert read_summary(out)["duration_s"] < 1.5  # two attempts of 0.2 s each, not 2 s each


# --- an API never reached ---


def _closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_api_never_reached_stops_after_connect_grace_s_naming_the_url_and_the_error(
    tmp_path: Path,
) -> None:
    lines, _ = customers(10)
    url = f"http://127.0.0.1:{_closed_port()}"
    # more attempts than the grace lets it use: the grace must be what stops it (the breaker
    # opens after 50 failures, and the next probe's failure is when the grace is looked at)
    job = job_file(
        tmp_path, lines, url, connect_grace_s=0.5, max_attempts=100, backoff_max=0.1,
        breaker_probe_s=0.1,
    )  # fmt: skip

    report = run(job)

    assert_stopped(report, f"no request reached the API at {url}/", "api.base_url", "--resume")
    assert report.message is not None
    assert "Connect call failed" in report.message or "refused" in report.message  # OS error
    summary = assert_stopped_with_nothing_done(tmp_path / "out", 10)
    assert summary["duration_s"] < 10


def test_a_small_export_to_an_api_never_reached_stops_rather_than_reject_every_record(
    tmp_path: Path,
) -> None:
    lines, _ = customers(5)  # 5 records x 5 attempts: fewer failures than open the breaker
    url = f"http://127.0.0.1:{_closed_port()}"
    job = job_file(tmp_path, lines, url, max_attempts=5, connect_grace_s=1)

    report = run(job)

    assert report.exit_code is ExitCode.STOPPED, report.message
    assert "no request reached the API" in (report.message or "")
    assert_stopped_with_nothing_done(tmp_path / "out", 5)


# --- a shared quota's storm: half 429s whatever the pace, 5xx and resets ---


def test_a_storm_of_shared_429s_5xx_and_resets_ends_with_every_record_accounted_for(
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    # 24 records: 1-3 s here, up to 20 s on a loaded machine when the job's pace falls to a
    # request a second before it is held. bench/storm.py runs issue 17's 3,000
    records = 24
    lines, expected = customers(records, prefix="S")
    sandbox.set_faults(rate_limited_share=0.5, fail_rate=0.15, reset_rate=0.03, seed=17)
    job = job_file(tmp_path, lines, sandbox.base_url, concurrency=16, max_attempts=12)

    report = run(job)

    stats = sandbox.stats()
    assert stored(sandbox) == expected
    assert report.exit_code is ExitCode.OK, report.message
    assert_conservation(tmp_path / "out", records)
    assert {r["status"] for r in read_csv(tmp_path / "out" / "results.csv")} <= set(SUCCESSES)
    faults = stats["faults"]
    assert report.summary.rate_limited == stats["by_status"]["429"] == faults["rate_limited_share"]
    assert 0.25 < report.summary.rate_limited / report.summary.requests < 0.75
    # 5xx and resets are retried; 429s are not retries and use up no attempt
    transient = ("fail_rate", "reset_before_write", "reset_after_write")
    assert report.summary.retries == sum(faults.get(k, 0) for k in transient) > 0
