"""Incremental sync against the real sandbox: only new and changed customers are sent."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest

from customer_import import cli
from customer_import.console import print_report
from customer_import.contracts import IncrementalFacts, RecordStatus, RunReport
from customer_import.record.snapshot import StateLocation, describe, state_key
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.sandbox.testing import SandboxServer
from tests.conftest import (
    API_KEY,
    CREDENTIALS,
    MERCHANT_ID,
    assert_conservation,
    load,
    read_csv,
    write_csv,
    write_job,
)

INCREMENTAL = 'mode = "incremental"\nmax_invalid_ratio = 1.0'


def _incremental(report: RunReport) -> IncrementalFacts:
    assert report.summary.incremental is not None
    return report.summary.incremental


def line(i: int, email: str | None = None) -> str:
    return f"C-{i:05d},First{i},Last{i},{email or f'c{i}@example.com'},,Active,no"


def export(tmp_path: Path, lines: list[str]) -> None:
    write_csv(tmp_path / "in.csv", *lines)


def job_for(tmp_path: Path, lines: list[str], extra: str = INCREMENTAL) -> Path:
    export(tmp_path, lines)
    return write_job(tmp_path, tmp_path / "in.csv", extra=extra)


def run(job: Path, sandbox: SandboxServer, **options: object) -> RunReport:
    base = {"environ": CREDENTIALS, "base_url": sandbox.base_url}
    return run_job(load(job), RunOptions(**{**base, **options}))  # type: ignore[arg-type]


def statuses(out_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in read_csv(out_dir / "results.csv"):
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    return counts


def test_second_run_sends_exactly_the_changed_and_added_records(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    first = [line(i) for i in range(4000)]
    job = job_for(tmp_path, first)
    run(job, sandbox)
    assert sandbox.stats()["requests_total"] == 4000
    sandbox.reset_stats()

    changed = {i: line(i, f"new{i}@example.com") for i in range(0, 4000, 100)}  # 1 %
    removed = set(range(50, 4000, 200))  # 0.5 %
    second = [changed.get(i, line(i)) for i in range(4000) if i not in removed]
    second += [line(i) for i in range(4000, 4020)]  # 0.5 % added
    export(tmp_path, second)
    report = run(job, sandbox)

    assert sandbox.stats()["requests_total"] == len(changed) + 20
    assert statuses(tmp_path / "out") == {"unchanged": 4000 - 40 - 20, "updated": 40, "created": 20}
    assert report.summary.count(RecordStatus.UNCHANGED) == 3940
    assert _incremental(report).missing_since_last_run == 20
    assert _incremental(report).missing_ids == sorted(f"C-{i:05d}" for i in removed)
    assert sandbox.get("C-00100")["email"] == "new100@example.com"  # type: ignore[index]
    assert_conservation(tmp_path / "out", len(second))


def test_deactivate_sends_missing_customers_with_active_false_once(
    tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # one of five missing is 20 %: above the default max_missing_ratio, which would stop the run
    extra = INCREMENTAL + '\non_missing = "deactivate"\nmax_missing_ratio = 0.25'
    job = job_for(tmp_path, [line(i) for i in range(5)], extra=extra)
    run(job, sandbox)

    export(tmp_path, [line(i) for i in range(4)])
    report = run(job, sandbox)

    gone = sandbox.get("C-00004")
    assert gone is not None and gone["active"] is False and gone["firstName"] == "First4"
    assert _incremental(report).deactivated == 1
    assert read_csv(tmp_path / "out" / "missing.csv") == [
        {
            "externalId": "C-00004",
            "status": "deactivated",
            "http_status": "200",
            "attempts": "1",
            "updated_at": gone["updatedAt"],
            "reason": "",
        }
    ]
    assert_conservation(tmp_path / "out", 4)  # deactivations are not input records
    assert report.summary.this_attempt.records == 4  # nor counted among this run's records

    print_report(report)  # the console summary names the deactivations and the fresh list
    missing = tmp_path / "out" / "missing.csv"
    assert f"missing since the last run 1, deactivated 1 (on_missing = deactivate): {missing}" in (
        capsys.readouterr().out
    )

    sandbox.reset_stats()
    again = run(job, sandbox)
    assert _incremental(again).missing_since_last_run == 0
    assert sandbox.stats()["requests_total"] == 0
    assert not missing.exists()  # last night's list is not left behind as if it were tonight's


def test_ignore_lists_missing_customers_without_sending(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = job_for(tmp_path, [line(i) for i in range(3)])
    run(job, sandbox)
    export(tmp_path, [line(0)])
    sandbox.reset_stats()

    report = run(job, sandbox)

    assert _incremental(report).missing_ids == ["C-00001", "C-00002"]
    assert sandbox.stats()["requests_total"] == 0
    assert {r["status"] for r in read_csv(tmp_path / "out" / "missing.csv")} == {"listed"}


def test_state_is_kept_per_api_so_staging_never_suppresses_production(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = job_for(tmp_path, [line(i) for i in range(3)])
    run(job, sandbox)
    with SandboxServer(api_key=API_KEY, merchant_id=MERCHANT_ID) as production:
        run(job, production)
        assert production.stats()["requests_total"] == 3


def test_a_record_rejected_last_time_is_sent_once_fixed(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = job_for(tmp_path, [line(0), line(1, "broken@")])
    run(job, sandbox)
    export(tmp_path, [line(0), line(1, "fixed@example.com")])
    sandbox.reset_stats()

    run(job, sandbox)

    assert sandbox.stats()["requests_total"] == 1
    assert statuses(tmp_path / "out") == {"unchanged": 1, "created": 1}


def test_a_transport_failure_is_retried_on_the_next_run(tmp_path: Path) -> None:
    port = _free_port()
    job = job_for(tmp_path, [line(0)])
    with SandboxServer(
        api_key=API_KEY, merchant_id=MERCHANT_ID, fail_rate=1.0, extra_args=["--port", str(port)]
    ) as down:
        run(job, down)
    with SandboxServer(
        api_key=API_KEY, merchant_id=MERCHANT_ID, extra_args=["--port", str(port)]
    ) as up:
        report = run(job, up)
        assert up.stats()["requests_total"] == 1
    assert report.summary.count(RecordStatus.CREATED) == 1


def test_a_changed_mapping_sends_everything_once(
    tmp_path: Path, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    job = job_for(tmp_path, [line(i) for i in range(3)])
    run(job, sandbox)
    job.write_text(
        job.read_text(encoding="utf-8").replace('lastName = "last"\n', ""), encoding="utf-8"
    )
    sandbox.reset_stats()

    with caplog.at_level("INFO", logger="customer_import"):
        run(job, sandbox)

    assert sandbox.stats()["requests_total"] == 3
    assert "the mapping changed" in caplog.text


def test_full_sends_everything_and_keeps_the_state_fresh(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = job_for(tmp_path, [line(i) for i in range(3)])
    run(job, sandbox)
    sandbox.reset_stats()

    run(job, sandbox, mode="full")
    assert sandbox.stats()["requests_total"] == 3
    sandbox.reset_stats()
    run(job, sandbox)
    assert sandbox.stats()["requests_total"] == 0


def test_a_dry_run_reports_what_would_be_sent_and_keeps_the_state(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = job_for(tmp_path, [line(i) for i in range(3)])
    run(job, sandbox)
    export(tmp_path, [line(0, "changed@example.com"), line(1), line(2)])

    report = run(job, sandbox, dry_run=True, out_dir=tmp_path / "dry")

    assert (
        report.summary.count(RecordStatus.VALID),
        report.summary.count(RecordStatus.UNCHANGED),
    ) == (1, 2)
    sandbox.reset_stats()
    run(job, sandbox)
    assert sandbox.stats()["requests_total"] == 1  # the dry run did not mark anything as synced


def test_an_aborted_run_marks_nothing_unsent_as_synced(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = job_for(tmp_path, [line(i) for i in range(3)])
    sandbox.revoke_key()

    assert run(job, sandbox).status == "aborted"

    (state,) = (tmp_path / "state").iterdir()
    location = StateLocation(state.parent, state.name)
    assert describe(location, "")["customers"] == 0  # a snapshot, empty
    assert not (state / "work").exists()


def test_state_show_and_reset(
    tmp_path: Path, sandbox: SandboxServer, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    job = job_for(tmp_path, [line(i) for i in range(3)])
    run(job, sandbox)

    assert cli.main(["state", "show", str(job), "--base-url", sandbox.base_url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown[0]["customers"] == 3 and shown[0]["mapping_unchanged"] is True

    assert cli.main(["state", "reset", str(job), "--all"]) == 0
    assert "removed" in capsys.readouterr().out
    sandbox.reset_stats()
    run(job, sandbox)
    assert sandbox.stats()["requests_total"] == 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_state_is_the_owners_only_files_0600_in_0700_folders(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = job_for(tmp_path, [line(i) for i in range(3)])
    folder = tmp_path / "state" / state_key("test-job", sandbox.base_url, MERCHANT_ID)
    folder.mkdir(parents=True, mode=0o755)  # made by an earlier version, say: made private
    run(job, sandbox)
    export(tmp_path, [line(i) for i in range(2)])
    run(job, sandbox)  # a second run rewrites the snapshot and its meta

    entries = [folder, *folder.rglob("*")]
    assert {p.name for p in entries} >= {
        "snapshot-000002",
        "part-00000.parquet",
        "meta.json",
        ".lock",
    }
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in entries}
    assert modes == {p.name: 0o700 if p.is_dir() else 0o600 for p in entries}


def test_unchanged_customers_are_named_in_results_as_sent_ones_are(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = job_for(tmp_path, [line(0), line(1)])
    run(job, sandbox)
    export(tmp_path, [line(0), line(1, "new1@example.com")])

    run(job, sandbox)

    results = {r["externalId"]: r for r in read_csv(tmp_path / "out" / "results.csv")}
    named = {k: (r["status"], r["firstName"], r["email"]) for k, r in results.items()}
    assert named == {
        "C-00000": ("unchanged", "First0", "c0@example.com"),
        "C-00001": ("updated", "First1", "new1@example.com"),
    }
