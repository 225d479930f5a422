"""Shards: N independent runs that together handle every record exactly once."""

from __future__ import annotations

import json
import signal
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

from customer_import.contracts import Progress, RecordStatus
from customer_import.errors import ConfigError
from customer_import.outputs import files
from customer_import.outputs.reading import read_table
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.run.settings import resolve_settings
from customer_import.sandbox.testing import SandboxServer
from customer_import.scale.merge import merge_outputs
from customer_import.scale.workers import CombinedProgress, run_in_workers
from customer_import.transform.sharding import Shard, concurrency_shares, shard_of
from tests.conftest import (
    API_KEY,
    CREDENTIALS,
    MERCHANT_ID,
    assert_conservation,
    load,
    read_csv,
    run_cli,
    write_csv,
    write_job,
)

LINES = [f"K-{i},First,Last,,,," for i in range(30)]
LINES += ["K-3,Again,Last,,,,", ",No,Id,,,,", "K-40,Bad,Email,bad@,,,"]  # repeat, no id, invalid


def test_the_shard_hash_is_stable_and_documented() -> None:
    # crc32 of the UTF-8 id, mod N, plus one: pinned so shards agree across machines and versions.
    assert [shard_of(i, 4) for i in ("CUST-1", "CUST-2", "000123", "Ünïcödé")] == [4, 2, 2, 4]


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_spec_is_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match="expected K/N"):
        Shard.parse(spec)


def test_a_jobs_concurrency_is_shared_between_its_shards() -> None:
    assert concurrency_shares(64, 2) == [32, 32]
    assert concurrency_shares(64, 3) == [22, 21, 21]
    assert concurrency_shares(3, 3) == [1, 1, 1]
    with pytest.raises(ConfigError, match="concurrency 2 is below the 4 shards"):
        concurrency_shares(2, 4)


def test_a_shards_settings_hold_its_share_of_the_limits(tmp_path: Path) -> None:
    job = load(write_job(tmp_path, write_csv(tmp_path / "in.csv", *LINES), api="rate_limit = 10"))

    def settings(
        concurrency: int | None, shard: Shard | None, dry_run: bool = False
    ) -> tuple[int, float | None]:
        options = RunOptions(concurrency=concurrency, shard=shard, dry_run=dry_run)
        resolved = resolve_settings(job, options, environ={})
        return resolved.concurrency, resolved.rate_limit

    assert settings(None, None) == (4, 10)  # the job file's
    assert settings(None, Shard(2, 4)) == (1, 2.5)
    assert settings(7, Shard(1, 2)) == (4, 5)  # the flag's, shared
    assert settings(7, Shard(2, 2)) == (3, 5)
    with pytest.raises(ConfigError, match="concurrency 4 is below the 5 shards"):
        settings(None, Shard(5, 5))
    assert settings(None, Shard(5, 5), dry_run=True) == (4, 10)  # sends nothing: nothing shared


def test_each_shard_keeps_to_its_share_of_the_jobs_concurrency(tmp_path: Path) -> None:
    lines = [f"N-{i},First,Last,,,," for i in range(60)]
    job = load(write_job(tmp_path, write_csv(tmp_path / "in.csv", *lines)))
    in_flight = []
    with SandboxServer(api_key=API_KEY, merchant_id=MERCHANT_ID, latency_ms=20) as slow:
        for k in (1, 2):
            options = RunOptions(
                environ=CREDENTIALS,
                base_url=slow.base_url,
                out_dir=tmp_path / f"shard-{k}",
                concurrency=3,
                shard=Shard(k, 2),
            )
            in_flight.append(run_job(job, options).summary.max_in_flight)

    assert in_flight == [2, 1]


def test_three_shards_together_handle_every_record_exactly_once(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    source = write_csv(tmp_path / "in.csv", *LINES)
    job = load(write_job(tmp_path, source, extra="max_invalid_ratio = 1.0"))
    folders = [tmp_path / f"shard-{k}" for k in (1, 2, 3)]
    for k, folder in enumerate(folders, start=1):
        options = RunOptions(
            environ=CREDENTIALS, base_url=sandbox.base_url, out_dir=folder, shard=Shard(k, 3)
        )
        report = run_job(job, options)
        assert 0 < report.summary.rows < len(LINES)

    merge_outputs(folders, tmp_path / "merged")

    assert_conservation(tmp_path / "merged", len(LINES))
    assert sandbox.stats()["requests_total"] == 30  # 30 distinct valid ids, none sent twice
    assert len(sandbox.customers()) == 30
    results = {r["row"]: r["status"] for r in read_csv(tmp_path / "merged" / "results.csv")}
    assert results["4"] == "duplicate"  # K-3 repeated: decided within one shard


def test_shards_workbooks_too_big_for_one_sheet_merge_into_csv_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    source = write_csv(tmp_path / "in.csv", *LINES)
    path = write_job(tmp_path, source, extra="max_invalid_ratio = 1.0")
    path.write_text(path.read_text().replace('dir = "out"', 'dir = "out"\nformat = "xlsx"'))
    job = load(path)
    folders = [tmp_path / f"shard-{k}" for k in (1, 2)]
    for k, folder in enumerate(folders, start=1):
        run_job(job, RunOptions(dry_run=True, out_dir=folder, shard=Shard(k, 2)))
    assert all((f / "results.xlsx").is_file() for f in folders)
    biggest = max(len(read_table(f / "results.xlsx")[1]) for f in folders)
    monkeypatch.setattr(files, "SHEET_ROWS", biggest + 2)  # each shard's fits, the two don't

    merge_outputs(folders, tmp_path / "merged")

    merged = tmp_path / "merged"
    assert not (merged / "results.xlsx").exists()
    results, rejects = read_table(merged / "results.csv")[1], read_table(merged / "rejects.xlsx")[1]
    assert results.height + rejects.height == len(LINES)  # every record, in one file or the other
    assert "results has" in caplog.text and "written as results.csv" in caplog.text


def test_merge_refuses_shards_that_overlap(tmp_path: Path, sandbox: SandboxServer) -> None:
    source = write_csv(tmp_path / "in.csv", *LINES)
    job = load(write_job(tmp_path, source, extra="max_invalid_ratio = 1.0"))
    options = RunOptions(environ=CREDENTIALS, base_url=sandbox.base_url, out_dir=tmp_path / "a")
    run_job(job, options)
    with pytest.raises(ConfigError, match="appear in more than one shard"):
        merge_outputs([tmp_path / "a", tmp_path / "a"], tmp_path / "merged")


def test_workers_split_the_records_between_processes_and_merge(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    source = write_csv(tmp_path / "in.csv", *LINES)
    job = write_job(tmp_path, source, base_url=sandbox.base_url, extra="max_invalid_ratio = 1.0")
    result = run_cli("run", str(job), "--workers", "2", env=CREDENTIALS, timeout=120)
    assert result.returncode == 1, result.stderr  # completed, with the invalid records rejected
    assert_conservation(tmp_path / "out", len(LINES))
    assert sandbox.stats()["requests_total"] == 30
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert 2 <= summary["max_in_flight"] <= 4  # the job's concurrency, shared by the workers
    assert sorted((tmp_path / "out" / "shards").iterdir()) == [
        tmp_path / "out" / "shards" / "1-of-2",
        tmp_path / "out" / "shards" / "2-of-2",
    ]
    # one page for the merged run, linking each shard's own (with its timeline and fields)
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert 'href="shards/1-of-2/report.html"' in page and "Reject reasons" in page


def test_workers_are_refused_before_starting_when_concurrency_cannot_be_shared(
    tmp_path: Path,
) -> None:
    job = write_job(tmp_path, write_csv(tmp_path / "in.csv", *LINES))  # concurrency 4
    result = run_cli("run", str(job), "--workers", "5", env=CREDENTIALS)
    assert result.returncode == 2
    assert result.stderr.count("concurrency 4 is below the 5 shards") == 1  # not once a worker
    assert not (tmp_path / "out").exists()


def test_the_workers_progress_is_added_up_once_every_worker_has_reported() -> None:
    reports: list[Progress] = []
    progress = CombinedProgress(2, reports.append)
    created, rejected = RecordStatus.CREATED, RecordStatus.REJECTED

    progress.follow(0, [Progress(10, 4, {created: 4}, 4), "not a report", None])
    assert reports == []  # the second worker's share of the records is not known yet
    progress.follow(1, [Progress(5, 5, {created: 3, rejected: 2}, 5)])
    progress.follow(0, [Progress(10, 10, {created: 10}, 10)])

    assert reports == [
        Progress(15, 9, {created: 7, rejected: 2}, 9),
        Progress(15, 15, {created: 13, rejected: 2}, 15),
    ]


def test_a_display_that_fails_stops_the_progress_not_the_reading(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(progress: Progress) -> None:
        raise OSError("the terminal is gone")

    reports = iter([Progress(5, i, {RecordStatus.CREATED: i}, i) for i in range(1, 6)])
    CombinedProgress(1, broken).follow(0, reports)

    assert next(reports, None) is None  # drained to the end: the worker never blocks on its pipe
    assert "progress is no longer shown (the terminal is gone)" in caplog.text


def test_a_run_whose_progress_display_breaks_still_finishes(tmp_path: Path) -> None:
    """A worker whose parent is gone: its progress pipe is broken, and its run goes on."""
    job = load(write_job(tmp_path, write_csv(tmp_path / "in.csv", *LINES)))

    def gone(progress: Progress) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    report = run_job(job, RunOptions(dry_run=True, shard=Shard(1, 2), progress=gone))

    assert report.status == "completed"
    assert (tmp_path / "out" / "summary.json").exists()


def test_a_workers_run_reports_the_progress_of_all_its_workers(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    source = write_csv(tmp_path / "in.csv", *LINES)
    job = write_job(tmp_path, source, base_url=sandbox.base_url, extra="max_invalid_ratio = 1.0")
    handler = signal.getsignal(signal.SIGINT)
    reports: list[Progress] = []

    options = RunOptions(out_dir=tmp_path / "out", progress=reports.append)
    report = run_in_workers(load(job), options, 2)

    assert (report.summary.rows, report.signum) == (len(LINES), None)
    last = reports[-1]
    assert last.done == last.total == len(LINES)
    assert sum(last.counts.values()) == len(LINES)
    assert signal.getsignal(signal.SIGINT) is handler  # the workers' forwarding is undone


def test_workers_started_are_stopped_when_another_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = load(write_job(tmp_path, write_csv(tmp_path / "in.csv", *LINES)))
    started: list[BaseProcess] = []
    real_start = BaseProcess.start

    def start_one(process: BaseProcess) -> None:
        if started:
            raise OSError("Resource temporarily unavailable")
        real_start(process)
        started.append(process)

    monkeypatch.setattr(BaseProcess, "start", start_one)
    with pytest.raises(OSError, match="temporarily unavailable"):
        run_in_workers(job, RunOptions(dry_run=True, out_dir=tmp_path / "out"), 2)

    assert not started[0].is_alive()  # not left running on an input about to go
