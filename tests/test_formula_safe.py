"""Issue 18, formula-safe outputs: a cell of results.csv or rejects.csv that a spreadsheet would
run as a formula is written with a leading apostrophe, and the tool's own rejects file read
back loses exactly that apostrophe, so a fixed rejects file sends the values first read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from customer_import.contracts import FORMULA_CHARS
from customer_import.outputs.files import sheet_safe
from customer_import.record.cells import sheet_safe as column_rule
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from tests.conftest import CREDENTIALS, load, read_csv
from tests.test_messy_inputs import RecordingApi, csv_text, export_job, run

HEADER = "id,first,last,email,phone,-notes"
TRAILER = ["_row", "_stage", "_reason", "_raw"]
ROWS = (
    '=1+1,"=HYPERLINK(""http://x"")",-Smith,,+1 212 555 0101,@SUM(A1)',
    'C-2,Ada,\'=kept,,,"\tindented"',  # an apostrophe already there is kept as it is
    'C-3,Bob,"\rcarriage",,"\'+44 20 7946 0018",+plus',
    "-4,Cy,@home,,,-",
    "C-5,,=no first name,,,=x",  # rejected by validation: its values round-trip too
    "-6,Too,Many,,,,,",  # a broken line: its _raw starts with "-"
)
MAPPING = """
[mapping]
externalId = "id"
firstName = "first"
lastName = "last"
email = "email"
phoneNumber = { column = "phone", default_region = "US" }
"""


class RefusingApi(RecordingApi):
    """Keeps every body and answers 400, so every record sent ends in rejects.csv."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        error = {"code": "VALIDATION_ERROR", "message": "refused", "details": []}
        return httpx.Response(400, json=error)


def run_with(job: Path, api: RecordingApi, **options: Any) -> None:
    transport = httpx.MockTransport(api)
    run_job(load(job), RunOptions(environ=CREDENTIALS, transport=transport, **options))


def raw_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1 212", "'+1 212"),
        ("-Smith", "'-Smith"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=x", "''=x"),  # one more apostrophe: reading back removes exactly one
        ("'x", "'x"),
        ("x=1", "x=1"),
        ("", ""),
        (None, ""),
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_apostrophe(
    value: str | None, written: str
) -> None:
    assert sheet_safe(value) == written


def test_a_fixed_rejects_file_sends_exactly_the_values_first_read(tmp_path: Path) -> None:
    job = export_job(tmp_path, csv_text(*ROWS, header=HEADER), mapping=MAPPING)
    refused = RefusingApi()
    run_with(job, refused)
    first = tmp_path / "out" / "rejects.csv"
    cells = raw_rows(first)
    assert cells[0] == ["id", "first", "last", "email", "phone", "'-notes", *TRAILER]
    assert cells[1][:6] == [
        "'=1+1",
        '\'=HYPERLINK("http://x")',
        "'-Smith",
        "",
        "'+1 212 555 0101",
        "'@SUM(A1)",
    ]
    assert cells[2][2] == "''=kept" and cells[3][2] == "'\rcarriage"
    assert cells[6][-1] == "'-6,Too,Many,,,,,"  # the parse reject's _raw
    fed_back = tmp_path / "fixed.csv"
    fed_back.write_bytes(first.read_bytes())

    resent = RecordingApi()
    run_with(job, resent, input=fed_back, out_dir=tmp_path / "again", restart=True)

    assert resent.bodies == refused.bodies  # the same values, byte for byte
    assert refused.bodies[0]["externalId"] == "=1+1"
    assert refused.bodies[0]["firstName"] == '=HYPERLINK("http://x")'
    assert refused.bodies[1]["lastName"] == "'=kept"


def test_a_dry_run_of_a_rejects_file_finds_the_same_values(tmp_path: Path) -> None:
    job = export_job(tmp_path, csv_text(*ROWS, header=HEADER), mapping=MAPPING)
    run_with(job, RefusingApi())
    first = tmp_path / "out" / "rejects.csv"

    report = run_job(
        load(job), RunOptions(dry_run=True, environ={}, input=first, out_dir=tmp_path / "dry")
    )

    assert report.summary.rows == 6  # the broken line's row too, its source cells empty
    results = raw_rows(tmp_path / "dry" / "results.csv")
    assert [r[1] for r in results[1:]] == ["'=1+1", "C-2", "C-3", "'-4"]
    again = raw_rows(tmp_path / "dry" / "rejects.csv")
    assert again[0] == [*raw_rows(first)[0][:-4], "source_row", "source_file", *TRAILER]
    assert again[1][:6] == raw_rows(first)[5][:6]  # record 5's cells, unchanged
    assert again[1][6:8] == ["5", "export.csv"]  # where it first was


def test_results_csv_writes_ids_sheet_safe(tmp_path: Path) -> None:
    data = csv_text("-1,Ada,,,", "@2,Bob,,,", "=3,Cy,,,", header="id,first,last,email,phone")

    outcome = run(export_job(tmp_path, data), 3)

    assert sorted(outcome.sent) == ["-1", "=3", "@2"]
    ids = [row[1] for row in raw_rows(tmp_path / "out" / "results.csv")[1:]]
    assert ids == ["'-1", "'@2", "'=3"]


def test_an_ordinary_export_keeps_its_leading_apostrophes(tmp_path: Path) -> None:
    data = csv_text("1,'=x,'-Smith,,", header="id,first,last,email,phone")

    outcome = run(export_job(tmp_path, data), 1)

    assert outcome.sent["1"] == {"externalId": "1", "firstName": "'=x", "lastName": "'-Smith"}
    assert read_csv(tmp_path / "out" / "results.csv")[0]["externalId"] == "1"


def test_the_column_rule_and_the_cell_rule_mark_the_same_texts() -> None:
    """results and rejects are marked column-wise (Polars), headers and missing.csv a cell at a
    time: both add the apostrophe to exactly the same texts."""
    alphabet = ["", "'", "a", "1", " ", *FORMULA_CHARS]
    texts = [a + b + c for a in alphabet for b in alphabet for c in ("", "x", "''=")]
    marked = pl.DataFrame({"t": texts}).select(column_rule("t")).to_series().to_list()
    assert marked == [sheet_safe(t) for t in texts]
