"""Shards: N independent runs that together handle every record exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from customer_import.errors import ConfigError
from customer_import.merge import merge_outputs
from customer_import.pipeline import RunOptions, run_job
from customer_import.sandbox.testing import SandboxServer
from customer_import.sharding import Shard, shard_of
from tests.conftest import CREDENTIALS, assert_conservation, load, read_csv, write_csv, write_job

LINES = [f"K-{i},First,Last,,,," for i in range(30)]
LINES += ["K-3,Again,Last,,,,", ",No,Id,,,,", "K-40,Bad,Email,bad@,,,"]  # repeat, no id, invalid


def test_the_shard_hash_is_stable_and_documented() -> None:
    # crc32 of the UTF-8 id, mod N, plus one: pinned so shards agree across machines and versions.
    assert [shard_of(i, 4) for i in ("CUST-1", "CUST-2", "000123", "Ünïcödé")] == [4, 2, 2, 4]


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_spec_is_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match="expected K/N"):
        Shard.parse(spec)


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
        assert 0 < report.summary["rows"] < len(LINES)

    merge_outputs(folders, tmp_path / "merged")

    assert_conservation(tmp_path / "merged", len(LINES))
    assert sandbox.stats()["requests_total"] == 30  # 30 distinct valid ids, none sent twice
    assert len(sandbox.customers()) == 30
    results = {r["row"]: r["status"] for r in read_csv(tmp_path / "merged" / "results.csv")}
    assert results["4"] == "duplicate"  # K-3 repeated: decided within one shard


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
    result = subprocess.run(
        [sys.executable, "-m", "customer_import", "run", str(job), "--workers", "2"],
        env={**os.environ, **CREDENTIALS},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr  # completed, with the invalid records rejected
    assert_conservation(tmp_path / "out", len(LINES))
    assert sandbox.stats()["requests_total"] == 30
    assert sorted((tmp_path / "out" / "shards").iterdir()) == [
        tmp_path / "out" / "shards" / "1-of-2",
        tmp_path / "out" / "shards" / "2-of-2",
    ]
