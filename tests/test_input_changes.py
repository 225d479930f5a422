"""The input cannot change under a run: a file rewritten, truncated or replaced while the run
reads it stops the sending within a batch (exit 3), and the outputs hold records of the
first file only, each once."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from customer_import.contracts import RunStatus
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from tests.conftest import CREDENTIALS, load, read_csv, read_summary, write_csv, write_job

RECORDS = 6_000
OLD = [f"OLD-{i:05d},First{i},Last,,,," for i in range(RECORDS)]
NEW = [f"NEW-{i:05d},Other{i},Last,,,," for i in range(RECORDS + 61)]


def rewrite(path: Path) -> None:
    """A new export written over the old one, in place."""
    write_csv(path, *NEW)


def truncate(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def replace(path: Path) -> None:
    """A new export renamed over the old one (a new inode at the same path)."""
    write_csv(path.with_name("new.csv"), *NEW)
    path.with_name("new.csv").replace(path)


def _api_changing_the_input(source: Path, change: Callable[[Path], None]) -> httpx.MockTransport:
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        sent += 1
        if sent == 100:  # the run is in its first batch: most of the file is still to read
            change(source)
        body = json.loads(request.content)
        return httpx.Response(201, json={**body, "createdAt": "t", "updatedAt": "t"})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("change", [rewrite, truncate, replace])
def test_an_input_changed_mid_run_stops_it_and_nothing_of_two_files_is_mixed(
    tmp_path: Path, change: Callable[[Path], None]
) -> None:
    source = write_csv(tmp_path / "in.csv", *OLD)
    job = load(write_job(tmp_path, source)).model_copy(deep=True)
    job = job.model_copy(update={"source": job.source.model_copy(update={"batch_size": 500})})
    transport = _api_changing_the_input(source, change)

    report = run_job(job, RunOptions(environ=CREDENTIALS, transport=transport, concurrency=1))

    assert report.status is RunStatus.ABORTED
    assert "the export changed while it was being read" in (report.message or "")
    out = tmp_path / "out"
    results, rejects = read_csv(out / "results.csv"), read_csv(out / "rejects.csv")
    rows = [int(r["row"]) for r in results] + [int(r["_row"]) for r in rejects]
    assert len(rows) == len(set(rows)) and max(rows) <= RECORDS
    assert all(r["externalId"].startswith("OLD-") for r in results)
    summary = read_summary(out)
    # Batches read (and found unchanged) before the change are sent; the rest waits.
    assert summary["pending"] == RECORDS - len(rows) > 0


def test_an_input_changed_in_place_after_it_was_read_is_found_by_its_digest(
    tmp_path: Path,
) -> None:
    source = write_csv(tmp_path / "in.csv", *OLD[:5])
    job = load(write_job(tmp_path, source))
    stat = source.stat()

    def same_size_and_time(path: Path) -> None:
        path.write_bytes(path.read_bytes().replace(b"First1,", b"Frist1,"))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        sent += 1
        if sent == 5:
            same_size_and_time(source)
        return httpx.Response(201, json={**json.loads(request.content), "createdAt": "t"})

    options = RunOptions(environ=CREDENTIALS, transport=httpx.MockTransport(handler))
    report = run_job(job, options)

    assert report.status is RunStatus.ABORTED
    assert "its content changed" in (report.message or "")
