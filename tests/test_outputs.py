"""The outputs stage runs on every exit path: the files account for every record however the
run ended."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from customer_import.contracts import RecordStatus, RunStatus
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from tests.conftest import (
    CREDENTIALS,
    assert_conservation,
    load,
    read_csv,
    read_summary,
    write_csv,
    write_job,
)

LINES = [f"M-{i},First{i},Last,m{i}@example.com,,Active," for i in range(1, 6)]


def _api_moving_the_input_away(source: Path, moved: Path) -> httpx.MockTransport:
    """Creates every customer but rejects M-3 (422); moves the input away at the last request,
    once every record has been read, so that only the end of the run finds it gone."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body["externalId"])
        if len(seen) == len(LINES):
            source.rename(moved)
        if body["externalId"] == "M-3":
            error = {"code": "BUSINESS_RULE", "message": "customer is blocked"}
            return httpx.Response(422, json={"error": error})
        stored = {**body, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}
        return httpx.Response(201, json=stored)

    return httpx.MockTransport(handler)


def test_an_input_moved_away_at_the_end_of_a_run_still_gets_its_files(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", *LINES)
    job = load(write_job(tmp_path, source))
    transport = _api_moving_the_input_away(source, tmp_path / "moved.csv")

    report = run_job(job, RunOptions(environ=CREDENTIALS, transport=transport, concurrency=1))

    out = tmp_path / "out"
    assert report.status is RunStatus.COMPLETED  # every record has its outcome
    assert report.summary.count(RecordStatus.CREATED) == 4
    assert_conservation(out, len(LINES))
    (reject,) = read_csv(out / "rejects.csv")
    assert (reject["_row"], reject["_stage"]) == ("3", "api")
    assert "customer is blocked" in reject["_reason"]
    assert reject["id"] == ""  # its source values could not be read back
    warnings = read_summary(out)["warnings"]
    assert any("could not be read back" in w for w in warnings)
