"""Spreadsheets in and out: results.xlsx and rejects.xlsx as text cells, an .xlsx input read
as text, a fixed rejects.xlsx fed back, CSV files shaped for a spreadsheet, and the names and
email that results carry."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import fastexcel
import polars as pl
import pytest
import xlsxwriter  # type: ignore[import-untyped]

from customer_import.contracts import PEOPLE, ROW, ExitCode, RecordStatus, ResultRow
from customer_import.errors import ConfigError, InputError
from customer_import.outputs.files import RESULTS_HEADER, Layout
from customer_import.record.journal import Journal
from customer_import.record.results import result_frames
from customer_import.sandbox.testing import SandboxServer
from tests.conftest import (
    HEADER,
    read_csv,
    read_summary,
    run_main,
    run_on,
    write_csv,
    write_job,
)

LINES = [
    "00123,Ada,Lovelace,ada@example.com,+1 212 555 0101,Active,no",
    "00124,Alan,Turing,not-an-email,2125550102,Active,no",
    "=2+2,Grace,Hopper,grace@example.com,,Active,no",
]


run = run_on


def sheet(path: Path) -> list[list[str]]:
    """Every row of the first sheet as text, the header first; empty cells as ""."""
    frame = fastexcel.read_excel(path).load_sheet(0, header_row=None, dtypes="string")
    return [[cell or "" for cell in row] for row in frame.to_polars().rows()]


def write_xlsx(path: Path, rows: Sequence[Sequence[object]], name: str = "Sheet1") -> Path:
    """A workbook as a spreadsheet saves one: numbers as numbers, text as text."""
    book = xlsxwriter.Workbook(path)
    page = book.add_worksheet(name)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, str):
                page.write_string(r, c, value)
            else:
                page.write(r, c, value)
    book.close()
    return path


def xlsx_job(tmp_path: Path, source: Path, extra: str = "") -> Path:
    job = write_job(tmp_path, source, extra="max_invalid_ratio = 1.0")
    text = job.read_text(encoding="utf-8").replace('dir = "out"', f'dir = "out"\n{extra}')
    job.write_text(text, encoding="utf-8")
    return job


def test_xlsx_outputs_are_text_cells_a_fixed_rejects_xlsx_goes_back_in(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = xlsx_job(tmp_path, write_csv(tmp_path / "export.csv", *LINES), 'format = "xlsx"')
    out = tmp_path / "out"

    first = run(job)  # the night that rejected it: a dry run is enough here

    assert first.exit_code == ExitCode.REJECTS
    assert not (out / "results.csv").exists() and not (out / "rejects.csv").exists()
    results = sheet(out / "results.xlsx")
    assert results[0] == list(RESULTS_HEADER)
    by_id = {row[1]: dict(zip(results[0], row, strict=True)) for row in results[1:]}
    assert by_id["00123"]["email"] == "ada@example.com"
    assert (by_id["00123"]["firstName"], by_id["00123"]["lastName"]) == ("Ada", "Lovelace")
    assert by_id["=2+2"]["status"] == "valid"  # text, not a formula, and no apostrophe
    rejects = sheet(out / "rejects.xlsx")
    assert rejects[0] == [*HEADER.split(","), "_row", "_stage", "_reason", "_raw"]
    assert rejects[1][:5] == ["00124", "Alan", "Turing", "not-an-email", "2125550102"]

    fixed = [rejects[0], [c.replace("not-an-email", "alan@example.com") for c in rejects[1]]]
    write_xlsx(out / "rejects.xlsx", fixed)  # the operator's edit, saved over the file
    refeed = run(job, sandbox, input=out / "rejects.xlsx")

    assert refeed.exit_code == ExitCode.OK
    assert sandbox.get("00124")["email"] == "alan@example.com"  # type: ignore[index]
    [header, row] = sheet(out / "results.xlsx")
    result = dict(zip(header, row, strict=True))
    assert (result["source_row"], result["source_file"]) == ("2", "export.csv")
    assert result["email"] == "alan@example.com"
    assert read_summary(out)["refeed_of"] == first.summary.run_id
    assert read_summary(out)["encoding"] == "xlsx"


def test_an_xlsx_export_is_read_as_text_numbers_without_dot_zero_blank_rows_unnumbered(
    tmp_path: Path,
) -> None:
    rows: list[Sequence[object]] = [
        HEADER.split(","),
        ["00042", "Ada", "Lovelace", "ada@example.com", 12125550101, "Active", "no"],
        [],  # a blank row: no record
        [7, "Alan", "Turing", "bad", "", "Active", "no"],
    ]
    source = write_xlsx(tmp_path / "export.xlsx", rows, name="Customers")
    job = xlsx_job(tmp_path, source)

    report = run(job)

    assert report.summary.rows == 2
    results = read_csv(tmp_path / "out" / "results.csv")
    assert [(r["row"], r["externalId"]) for r in results] == [("1", "00042")]
    [reject] = read_csv(tmp_path / "out" / "rejects.csv")
    assert (reject["_row"], reject["id"], reject["email"]) == ("2", "7", "bad")


def test_a_note_typed_beside_rejects_xlsx_is_not_read_and_a_row_of_spaces_is_a_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = xlsx_job(tmp_path, write_csv(tmp_path / "export.csv", *LINES), 'format = "xlsx"')
    out = tmp_path / "out"
    run(job)
    rejects = sheet(out / "rejects.xlsx")
    spaces = ["  "] + [""] * (len(rejects[0]) - 1)
    write_xlsx(out / "rejects.xlsx", [rejects[0], [*rejects[1], "", "fixed by Jo"], spaces])

    refeed = run(job, input=out / "rejects.xlsx")

    assert refeed.summary.refeed_of is not None  # still known as the tool's own rejects
    assert refeed.summary.rows == 2  # the row of spaces is a record (rejected), not skipped
    header = sheet(out / "rejects.xlsx")[0]
    assert header.count("_row") == 1 and header[-4:] == ["_row", "_stage", "_reason", "_raw"]
    assert "(from column 12) hold values" in caplog.text


def test_a_named_sheet_is_read_and_an_unknown_one_is_named_in_the_error(tmp_path: Path) -> None:
    book = xlsxwriter.Workbook(tmp_path / "export.xlsx")
    book.add_worksheet("Notes").write_string(0, 0, "not the data")
    data = book.add_worksheet("Customers")
    for c, cell in enumerate(HEADER.split(",")):
        data.write_string(0, c, cell)
    for c, cell in enumerate(LINES[0].split(",")):
        data.write_string(1, c, cell)
    book.close()
    job = write_job(tmp_path, tmp_path / "export.xlsx")
    text = job.read_text(encoding="utf-8")
    job.write_text(text.replace("[source]", '[source]\nsheet = "Customers"'), encoding="utf-8")
    assert run(job).summary.rows == 1
    job.write_text(text.replace("[source]", '[source]\nsheet = "Other"'), encoding="utf-8")
    with pytest.raises(InputError, match=r"no sheet 'Other'; .* are 'Notes', 'Customers'"):
        run(job)


def test_csv_bom_and_semicolons_and_the_rejects_go_back_in(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    source = write_csv(tmp_path / "export.csv", *LINES)
    job = xlsx_job(tmp_path, source, 'csv_bom = true\ncsv_delimiter = ";"')
    out = tmp_path / "out"

    run(job)

    raw = (out / "rejects.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfid;first;")
    assert (out / "results.csv").read_bytes().startswith(b"\xef\xbb\xbfrow;externalId;")
    text = raw.decode("utf-8-sig").replace("not-an-email", "alan@example.com")
    (out / "rejects.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    refeed = run(job, sandbox, input=out / "rejects.csv")
    assert refeed.exit_code == ExitCode.OK
    assert sandbox.get("00124")["email"] == "alan@example.com"  # type: ignore[index]


def test_without_the_excel_extra_an_xlsx_job_stops_before_anything_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = xlsx_job(tmp_path, write_csv(tmp_path / "export.csv", *LINES), 'format = "xlsx"')
    monkeypatch.setitem(sys.modules, "xlsxwriter", None)  # import xlsxwriter: ImportError
    with pytest.raises(ConfigError, match=r"pip install 'customer-import\[excel\]'") as caught:
        run(job)
    assert caught.value.exit_code == ExitCode.NOTHING_DONE
    monkeypatch.setitem(sys.modules, "fastexcel", None)
    source = write_xlsx(tmp_path / "in.xlsx", [HEADER.split(",")])
    with pytest.raises(ConfigError, match="excel extra"):
        run(xlsx_job(tmp_path, source))


def test_format_on_the_command_line_overrides_the_job_file(tmp_path: Path) -> None:
    job = xlsx_job(tmp_path, write_csv(tmp_path / "export.csv", *LINES))
    result = run_main("run", str(job), "--dry-run", "--format", "xlsx", "--no-progress")
    assert result.returncode == ExitCode.REJECTS, result.stderr
    out = tmp_path / "out"
    assert sheet(out / "rejects.xlsx")[1][0] == "00124"
    assert not (out / "results.csv").exists()
    assert f"results.xlsx: {out / 'results.xlsx'}" in result.stdout  # what it wrote, named
    assert f"rejects.xlsx: {out / 'rejects.xlsx'}" in result.stdout


def test_a_journal_of_an_earlier_version_gains_the_names_table(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:  # as an earlier version left it: no people table
        journal.add_result(ResultRow(1, "C-1", RecordStatus.CREATED, 201, 1, "t", "t"))
        journal.flush()
        journal._db.execute("DROP TABLE people")
    with Journal(path) as journal:  # resumed: its pending records bring their names
        names = [(2, "Ada", "Lovelace", "=ada@example.com")]
        journal.add_people(pl.DataFrame(names, schema=[ROW, *PEOPLE], orient="row"))
        journal.add_result(ResultRow(2, "C-2", RecordStatus.CREATED, 201, 1, "t", "t"))
        journal.flush()
        (frame,) = result_frames(journal)
        assert frame.select(PEOPLE).rows() == [
            (None, None, None),
            ("Ada", "Lovelace", "'=ada@example.com"),
        ]
        (as_is,) = result_frames(journal, safe=False)
        assert as_is["email"][1] == "=ada@example.com"


def test_more_rows_than_a_worksheet_holds_are_written_as_csv_with_a_warning() -> None:
    assert Layout("xlsx").fitting("results", 1_048_575) == (Layout("xlsx"), None)  # + header
    layout, warning = Layout("xlsx", bom=True).fitting("rejects", 1_048_576)
    assert layout == Layout("csv", bom=True)
    assert warning is not None and "written as rejects.csv" in warning
