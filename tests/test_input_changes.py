"""The input cannot change under a run: a file rewritten, truncated or replaced while the run
reads it stops the sending within a batch (exit 3), and the outputs hold records of the
first file only, each once."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from customer_import.config import SourceConfig
from customer_import.contracts import RunStatus
from customer_import.run import pipeline
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.source import open_source
from customer_import.transform.prepare import PrePass, pre_pass
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


def same_size_and_time(path: Path) -> None:
    """The file changed in place, keeping its size and modification time: only its digest
    tells."""
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(b"First1,", b"Frist1,"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_an_input_changed_in_place_between_its_reads_is_found_by_its_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-pass reads the first version and the records are read from the second."""
    source = write_csv(tmp_path / "in.csv", *OLD[:5])
    job = load(write_job(tmp_path, source))

    def pre_pass_then_change(*args: Any, **kwargs: Any) -> PrePass:
        found = pre_pass(*args, **kwargs)
        same_size_and_time(source)
        return found

    monkeypatch.setattr(pipeline, "pre_pass", pre_pass_then_change)
    api = _api_changing_the_input(source, lambda _: None)
    options = RunOptions(environ=CREDENTIALS, transport=api)
    report = run_job(job, options)

    assert report.status is RunStatus.ABORTED
    assert "its content changed" in (report.message or "")


def test_a_change_after_the_last_read_changes_nothing_that_was_read(tmp_path: Path) -> None:
    """The digest is taken again once the records have all been read (while the last are
    worked on): the bytes changed later were not read, so what was sent came from one file.
    A read that stops short takes it at the end instead."""
    path = write_csv(tmp_path / "in.csv", *OLD[:5])
    with open_source(SourceConfig(path=path), path) as whole:
        assert whole.digest and len(list(whole.batches(last=True))) == 1
        for thread in threading.enumerate():  # the digest is taken: the change comes after
            if thread.name == "digest":
                thread.join()
        same_size_and_time(path)
        assert whole.changed() is None
    write_csv(path, *OLD[:5])
    with open_source(SourceConfig(path=path), path) as part:
        assert part.digest and len(list(part.batches())) == 1  # not the last read
        same_size_and_time(path)
        changed = part.changed()
        assert changed is not None and "its content changed" in str(changed)
