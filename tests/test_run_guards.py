"""The export as a whole is checked before anything is sent: an empty export, or one that has
lost many of the customers the last one had, stops the run (exit 3) rather than deactivate
them or call an empty night a success."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from customer_import.contracts import ExitCode, RunStatus
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.sandbox.testing import SandboxServer
from customer_import.transform.duplicates import RepeatedIdFinder, id_hashes
from tests.conftest import CREDENTIALS, load, read_summary, run_main, write_csv, write_job

DEACTIVATE = 'mode = "incremental"\non_missing = "deactivate"'


def line(i: int) -> str:
    return f"G-{i:03d},First{i},Last{i},g{i}@example.com,,Active,no"


def _job(tmp_path: Path, lines: list[str], extra: str = "", base_url: str = "") -> Path:
    source = write_csv(tmp_path / "in.csv", *lines)
    return write_job(tmp_path, source, extra=extra, **({"base_url": base_url} if base_url else {}))


def _run(job: Path, sandbox: SandboxServer, **options: object) -> tuple[RunStatus, str | None]:
    base = {"environ": CREDENTIALS, "base_url": sandbox.base_url}
    report = run_job(load(job), RunOptions(**{**base, **options}))  # type: ignore[arg-type]
    return report.status, report.message


def test_a_header_only_export_is_refused_with_exit_3_and_nothing_sent(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = _job(tmp_path, [], base_url=sandbox.base_url)

    result = run_main("run", str(job), "--no-progress", env=CREDENTIALS)

    assert result.returncode == ExitCode.STOPPED, result.stdout + result.stderr
    assert "the export holds no record" in result.stdout
    assert "--resume" not in result.stdout  # nothing to resume
    assert sandbox.stats()["requests_total"] == 0
    assert read_summary(tmp_path / "out")["status"] == "aborted"


def test_an_empty_export_is_a_completed_run_when_the_job_allows_it(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = _job(tmp_path, [], extra="allow_empty = true")

    assert _run(job, sandbox)[0] is RunStatus.COMPLETED


def test_a_truncated_nightly_export_deactivates_nobody(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = _job(tmp_path, [line(i) for i in range(50)], extra=DEACTIVATE + "\nallow_empty = true")
    assert _run(job, sandbox)[0] is RunStatus.COMPLETED
    sandbox.reset_stats()
    write_csv(tmp_path / "in.csv")  # night 2: only the header line

    status, message = _run(job, sandbox)

    assert status is RunStatus.ABORTED
    assert "50 of the 50 customers of the last export (100%) are missing" in (message or "")
    assert "--allow-missing" in (message or "")
    assert sandbox.stats()["requests_total"] == 0
    assert all(c["active"] for c in sandbox.customers())


def test_allow_missing_deactivates_them_for_one_run_and_the_console_says_so(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = _job(tmp_path, [line(i) for i in range(10)], extra=DEACTIVATE, base_url=sandbox.base_url)
    assert _run(job, sandbox)[0] is RunStatus.COMPLETED
    write_csv(tmp_path / "in.csv", *[line(i) for i in range(6)])  # 4 of 10 gone: 40 %

    refused = run_main("run", str(job), "--no-progress", env=CREDENTIALS)
    allowed = run_main("run", str(job), "--no-progress", "--allow-missing", env=CREDENTIALS)

    assert refused.returncode == ExitCode.STOPPED
    assert allowed.returncode == ExitCode.OK, allowed.stdout + allowed.stderr
    assert "deactivated 4" in allowed.stdout
    assert "deactivating them" in allowed.stderr  # and the log says so as it happens
    assert sorted(c["externalId"] for c in sandbox.customers() if not c["active"]) == [
        f"G-{i:03d}" for i in range(6, 10)
    ]


def test_many_missing_customers_are_a_warning_when_they_are_only_listed(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = _job(tmp_path, [line(i) for i in range(10)], extra='mode = "incremental"')
    _run(job, sandbox)
    write_csv(tmp_path / "in.csv", *[line(i) for i in range(7)])

    status, _ = _run(job, sandbox)

    assert status is RunStatus.COMPLETED
    warnings = read_summary(tmp_path / "out")["warnings"]
    assert any("3 of the 10 customers of the last export" in w for w in warnings)


@pytest.mark.parametrize("flags", [["--workers", "2"], ["--shard", "1/2"]])
def test_an_incremental_job_is_not_split_into_shards(tmp_path: Path, flags: list[str]) -> None:
    job = _job(tmp_path, [line(1)], extra='mode = "incremental"')

    result = run_main("run", str(job), "--dry-run", "--no-progress", *flags, env=CREDENTIALS)

    assert result.returncode == ExitCode.NOTHING_DONE
    assert "an incremental job runs in one process" in result.stderr


@pytest.mark.parametrize("budget", [1_000, 3])  # in memory, and spilled to disk in buckets
def test_the_pre_pass_counts_the_known_ids_the_export_lacks(tmp_path: Path, budget: int) -> None:
    finder = RepeatedIdFinder(tmp_path / "spill", budget=budget)
    for chunk in (["a", "b", "c"], ["d", None, "e"], ["f"]):
        finder.add(id_hashes(pl.Series(chunk, dtype=pl.String)))

    known = id_hashes(pl.Series(["a", "x", "f", "y", None, "z"], dtype=pl.String))

    assert finder.count_absent(known) == 3


def test_the_incremental_flag_diffs_a_full_job_against_its_state(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = _job(tmp_path, [line(i) for i in range(4)])  # mode = "full"
    _run(job, sandbox, mode="incremental")
    sandbox.reset_stats()

    assert _run(job, sandbox, mode="incremental")[0] is RunStatus.COMPLETED

    assert sandbox.stats()["requests_total"] == 0  # every record unchanged since the last run
