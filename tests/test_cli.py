"""The command as a user runs it: exit codes, messages, logs, signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from customer_import import cli
from customer_import.console import ProgressRenderer
from customer_import.contracts import ExitCode
from customer_import.sandbox.testing import SandboxServer
from tests.conftest import (
    API_KEY,
    CREDENTIALS,
    MERCHANT_ID,
    assert_conservation,
    cli_env,
    read_summary,
    run_main,
    write_csv,
    write_job,
)

GOOD = ("C-1,Ada,Lovelace,ada@example.com,,Active,no", "C-2,Grace,Hopper,,,Inactive,")


def job_with(tmp_path: Path, *lines: str, base_url: str = "http://127.0.0.1:9") -> Path:
    return write_job(
        tmp_path,
        write_csv(tmp_path / "in.csv", *lines),
        base_url=base_url,
        extra="max_invalid_ratio = 1.0",
    )


def test_help_lists_the_commands() -> None:
    result = run_main("--help")
    assert result.returncode == 0
    assert "run" in result.stdout and "sandbox" in result.stdout


@pytest.mark.parametrize(
    ("lines", "code"),
    [(GOOD, ExitCode.OK), ((*GOOD, "C-3,,,,,,"), ExitCode.REJECTS)],
)
def test_exit_code_says_whether_there_were_rejects(
    tmp_path: Path, sandbox: SandboxServer, env: dict[str, str], lines: tuple[str, ...], code: int
) -> None:
    job = job_with(tmp_path, *lines, base_url=sandbox.base_url)
    assert cli.main(["run", str(job), "--no-progress"]) == code


def test_a_real_run_without_credentials_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = run_main("run", str(job_with(tmp_path, *GOOD)))
    assert result.returncode == ExitCode.NOTHING_DONE
    assert "CUSTOMERS_API_KEY" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing started


def test_a_dry_run_needs_no_credentials(tmp_path: Path) -> None:
    result = run_main("run", str(job_with(tmp_path, *GOOD)), "--dry-run")
    assert result.returncode == ExitCode.OK, result.stderr
    assert "completed: 2 records" in result.stdout
    assert f"report.html: {tmp_path / 'out' / 'report.html'}" in result.stdout
    assert read_summary(tmp_path / "out")["valid"] == 2


def test_an_unknown_key_in_the_job_file_exits_2_naming_it(tmp_path: Path) -> None:
    job = job_with(tmp_path, *GOOD)
    job.write_text(
        job.read_text(encoding="utf-8") + "\n[reporting]\nformat = 'x'\n", encoding="utf-8"
    )
    result = run_main("run", str(job), "--dry-run")
    assert result.returncode == ExitCode.NOTHING_DONE
    assert "unknown key 'reporting'" in result.stderr


def test_plain_http_to_another_machine_is_refused(tmp_path: Path) -> None:
    result = run_main(
        "run",
        str(job_with(tmp_path, *GOOD)),
        "--base-url",
        "http://api.example.com",
        env=CREDENTIALS,
    )
    assert result.returncode == ExitCode.NOTHING_DONE
    assert "unencrypted" in result.stderr


def test_a_refused_key_exits_3_and_says_what_to_check(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = job_with(tmp_path, *GOOD, base_url=sandbox.base_url)
    result = run_main("run", str(job), env={**CREDENTIALS, "CUSTOMERS_API_KEY": "wrong-key"})
    assert result.returncode == ExitCode.STOPPED
    assert "CUSTOMERS_API_KEY" in result.stdout and "--resume" in result.stdout
    assert read_summary(tmp_path / "out")["status"] == "aborted"


def test_json_logs_are_one_object_a_line_and_never_hold_the_key(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = job_with(tmp_path, *GOOD, "C-3,,,,,,", base_url=sandbox.base_url)
    result = run_main("run", str(job), "--log-format", "json", env=CREDENTIALS)
    assert result.returncode == ExitCode.REJECTS
    # every line the command writes, on either stream (cron's >> log 2>&1 mixes them)
    entries = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()]
    assert entries and all({"time", "level", "message"} <= set(e) for e in entries)
    assert API_KEY not in result.stdout + result.stderr
    [finished] = [e for e in entries if e.get("event") == "run_finished"]
    assert finished["level"] == "warning"  # completed, with a reject
    assert (finished["status"], finished["exit_code"], finished["rows"]) == ("completed", 1, 3)
    assert (finished["created"], finished["rejected"]) == (2, 1)
    assert finished["rejected_by_stage"] == {"validation": 1}
    assert finished["files"]["report.html"] == str(tmp_path / "out" / "report.html")


def test_json_logs_carry_the_fatal_reason_as_an_event_and_nothing_else_on_stdout(
    tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    job = job_with(tmp_path, *GOOD, base_url=sandbox.base_url)
    environ = {**CREDENTIALS, "CUSTOMERS_API_KEY": "wrong-key"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        code = cli.main(["run", str(job), "--log-format", "json", "--no-progress"])

    assert code == ExitCode.STOPPED
    out, err = capsys.readouterr()
    assert out == ""
    entries = [json.loads(line) for line in err.splitlines()]
    [stopped] = [e for e in entries if e.get("event") == "run_stopped"]
    assert stopped["level"] == "error" and stopped["exit_code"] == 3
    assert "401" in stopped["message"] and "CUSTOMERS_API_KEY" in stopped["message"]
    assert "--resume" in stopped["message"]
    [finished] = [e for e in entries if e.get("event") == "run_finished"]
    assert (finished["status"], finished["pending"], finished["created"]) == ("aborted", 2, 0)


def test_a_usage_error_with_json_logs_is_a_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "job.toml", "--log-format", "json", "--concurency", "3"])
    assert exited.value.code == ExitCode.NOTHING_DONE
    out, err = capsys.readouterr()
    [entry] = [json.loads(line) for line in (out + err).splitlines()]
    assert entry["event"] == "usage_error" and "--concurency" in entry["message"]


def test_progress_is_logged_without_a_terminal_even_with_no_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--no-progress turns off the bar only: cron's log still gets a progress line every 10 s
    (here every tick)."""
    monkeypatch.setattr(ProgressRenderer, "LOG_EVERY_S", 0.0)
    job = job_with(tmp_path, *GOOD)
    code = cli.main(["run", str(job), "--dry-run", "--no-progress", "--log-format", "json"])

    assert code == ExitCode.OK
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    progress = [e for e in entries if e.get("event") == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 2
    assert progress[-1]["valid"] == 2


def test_sigterm_mid_run_stops_cleanly_and_resume_finishes_the_job(tmp_path: Path) -> None:
    lines = [f"S-{i},First,Last,,,," for i in range(300)]
    with SandboxServer(api_key=API_KEY, merchant_id=MERCHANT_ID, latency_ms=50) as slow:
        job = job_with(tmp_path, *lines, base_url=slow.base_url)
        process = subprocess.Popen(
            [sys.executable, "-m", "customer_import", "run", str(job), "--no-progress"],
            env=cli_env(CREDENTIALS),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for_requests(slow, at_least=20)
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)
        assert process.returncode == ExitCode.SIGTERM, stdout
        summary = read_summary(tmp_path / "out")
        assert summary["status"] == "interrupted"
        assert 0 < summary["created"] < 300 and summary["pending"] == 300 - summary["created"]

        resumed = run_main("run", str(job), "--resume", env=CREDENTIALS)
        assert resumed.returncode == ExitCode.OK, resumed.stdout + resumed.stderr
        assert len(slow.customers()) == 300
    assert_conservation(tmp_path / "out", 300)
    assert read_summary(tmp_path / "out")["created"] == 300


def _wait_for_requests(sandbox: SandboxServer, at_least: int) -> None:
    deadline = time.monotonic() + 30
    while sandbox.stats()["requests_total"] < at_least:
        assert time.monotonic() < deadline, "the job sent nothing"
        time.sleep(0.05)


def test_check_reports_each_field_with_masked_examples_and_exits_1_on_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (*GOOD, "C-3,Al,Bo,alan.turing@example,(212) 555-01,Active,maybe", "C-4,,X,,,,")
    job = job_with(tmp_path, *lines)

    assert cli.main(["check", str(job)]) == ExitCode.REJECTS

    out = capsys.readouterr().out
    assert "4 records: 2 valid, 0 duplicate, 2 rejected" in out
    assert "email: 1 valid, 2 empty, 1 rejected" in out
    assert "'a***@example'" in out and "alan.turing" not in out
    assert "'(2******5-01'" in out and "(212) 555-01" not in out
    assert "firstName: 3 valid, 0 empty, 1 rejected" in out
    assert "1 x required, but empty   e.g. (empty)" in out
    assert "1 x … is not a yes/no value" in out and "'maybe'" in out
    assert (tmp_path / "out" / "check" / "rejects.csv").exists()


def test_check_adds_up_every_batch_whichever_thread_validated_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Batches are validated two at a time; their counts are merged in file order."""
    lines = [
        f"C-{i},Ann,Lee,{'bad-email' if i % 10 == 0 else f'a{i}@example.com'},,Active,"
        + ("perhaps" if i % 25 == 0 else "yes")
        for i in range(1, 3_001)  # a first batch of 1,000 records, then one of 2,000
    ]

    assert cli.main(["check", str(job_with(tmp_path, *lines))]) == ExitCode.REJECTS

    out = capsys.readouterr().out
    assert "3000 records: 2640 valid, 0 duplicate, 360 rejected" in out
    assert "email: 2700 valid, 0 empty, 300 rejected" in out
    assert "notificationOptions.notifyEmail: 2880 valid, 0 empty, 120 rejected" in out


def test_check_exits_0_when_every_record_is_valid(tmp_path: Path) -> None:
    assert cli.main(["check", str(job_with(tmp_path, *GOOD))]) == ExitCode.OK
