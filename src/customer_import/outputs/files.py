"""results, rejects, missing.csv and summary.json, rendered from the journal.

Each file is written to a temporary name and renamed into place, so a reader (or a crash)
never sees half a file. Files that hold customer data are created readable by the owner only.
results and rejects are CSV files, or workbooks (``[output] format = "xlsx"``, ``excel.py``),
whose cells are all text. A CSV cell that a spreadsheet would run as a formula (it starts with
``=``, ``+``, ``-``, ``@``, a tab or a CR) is written with a leading apostrophe; reading the
tool's own rejects file back removes exactly that apostrophe (``source.csv_file``), so a fixed
rejects file round-trips. ``csv_bom`` and ``csv_delimiter`` shape the CSV files for a
spreadsheet (a BOM that says UTF-8; ``;`` for a European locale).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Protocol

import polars as pl

from customer_import.config import OutputConfig, TableFormat
from customer_import.contracts import (
    FORMULA_CHARS,
    PEOPLE,
    REJECTS_TRAILER,
    RecordStatus,
    RunSummary,
)
from customer_import.durable import replaced_text
from customer_import.outputs.excel import SHEET_ROWS, workbook
from customer_import.outputs.summary import summary_json
from customer_import.record.journal import Journal
from customer_import.record.results import reject_frames, result_frames

RESULTS: Final = "results"
REJECTS: Final = "rejects"
RESULTS_NAME: Final = "results.csv"
REJECTS_NAME: Final = "rejects.csv"
FORMATS: Final[tuple[TableFormat, ...]] = ("csv", "xlsx")
SUMMARY_NAME: Final = "summary.json"
MISSING_NAME: Final = "missing.csv"
PENDING_NAME: Final = "pending.csv"
LINEAGE: Final = ("source_row", "source_file")
"""Columns of a fed back rejects file's results and rejects: where each record first was.
In rejects.csv they come just before ``_row,_stage,_reason,_raw``."""
_MISSING_LABELS: Final[dict[object, str]] = {
    RecordStatus.CREATED: "deactivated",
    RecordStatus.UPDATED: "deactivated",
    RecordStatus.REJECTED: "failed",
}
MISSING_HEADER: Final = ("externalId", "status", "http_status", "attempts", "updated_at", "reason")

RESULTS_HEADER: Final = (
    "row",
    "externalId",
    "status",
    "http_status",
    "attempts",
    "created_at",
    "updated_at",
    "detail",
    "warnings",
    *PEOPLE,
)


@dataclass(frozen=True, slots=True)
class Layout:
    """How results and rejects are written (``[output] format``, ``csv_bom``,
    ``csv_delimiter``); missing.csv takes the CSV settings."""

    format: TableFormat = "csv"
    bom: bool = False
    delimiter: str = ","

    @classmethod
    def of(cls, output: OutputConfig | None) -> Layout:
        if output is None:
            return cls()
        return cls(output.format, output.csv_bom, output.csv_delimiter)

    def name(self, stem: str) -> str:
        return f"{stem}.{self.format}"

    @property
    def escaped(self) -> bool:
        """CSV cells get the formula-safety apostrophe; a workbook's text cells need none."""
        return self.format == "csv"

    def fitting(self, stem: str, rows: int) -> tuple[Layout, str | None]:
        """This layout, or CSV with a warning when a workbook's sheet cannot hold ``rows``."""
        if self.format != "xlsx" or rows < SHEET_ROWS:
            return self, None
        warning = (
            f"{stem} has {rows:,} rows, more than a worksheet holds ({SHEET_ROWS - 1:,} below "
            f"its header): written as {stem}.csv instead of {stem}.xlsx"
        )
        return Layout("csv", self.bom, self.delimiter), warning


class TableWriter(Protocol):
    """What ``CsvTable`` and ``excel.SheetWriter`` both are."""

    def writerow(self, row: Sequence[Any], /) -> object: ...

    def writerows(self, rows: Iterable[Sequence[Any]], /) -> object: ...

    def write_frame(self, frame: pl.DataFrame, /) -> object: ...


class CsvTable:
    """``csv.writer``'s two methods, and a frame's rows written by Polars (a text column, null
    where empty: csv.writer's quoting and line ends)."""

    def __init__(self, handle: IO[str], delimiter: str) -> None:
        self._handle, self._delimiter = handle, delimiter
        self._writer = csv.writer(handle, delimiter=delimiter)
        self.writerow, self.writerows = self._writer.writerow, self._writer.writerows

    def write_frame(self, frame: pl.DataFrame) -> None:
        text = frame.write_csv(
            include_header=False, separator=self._delimiter, line_terminator="\r\n"
        )
        self._handle.write(text)


@contextmanager
def open_table(folder: Path, stem: str, layout: Layout) -> Iterator[TableWriter]:
    """``folder/stem.csv`` or ``.xlsx``, written atomically; the same table in the other
    format, left by an earlier attempt of the run, is removed once this one is written."""
    path = folder / layout.name(stem)
    if layout.format == "xlsx":
        with workbook(path, stem) as sheet:
            yield sheet
    else:
        with replaced_text(path) as handle:
            if layout.bom:
                handle.write("\ufeff")
            yield CsvTable(handle, layout.delimiter)
    for other in FORMATS:
        if other != layout.format:
            (folder / f"{stem}.{other}").unlink(missing_ok=True)


def table_path(folder: Path, stem: str) -> Path | None:
    """The table a run wrote in ``folder``, whichever its format; None when there is none."""
    return next((p for f in FORMATS if (p := folder / f"{stem}.{f}").is_file()), None)


def write_results(
    journal: Journal, out_dir: Path, *, lineage: bool = False, layout: Layout = Layout()
) -> None:
    """``lineage``: a fed back rejects file's results end with source_row, source_file."""
    with open_table(out_dir, RESULTS, layout) as table:
        table.writerow([*RESULTS_HEADER, *(LINEAGE if lineage else ())])
        for frame in result_frames(journal, lineage=lineage, safe=layout.escaped):
            table.write_frame(frame)


def write_rejects(
    journal: Journal,
    out_dir: Path,
    header: list[str],
    *,
    lineage: bool = False,
    layout: Layout = Layout(),
) -> None:
    """The source's own header (dropped columns left out), then (``lineage``) source_row and
    source_file, then _row,_stage,_reason,_raw."""
    cell = sheet_safe if layout.escaped else _text
    with open_table(out_dir, REJECTS, layout) as table:
        table.writerow([*map(cell, header), *(LINEAGE if lineage else ()), *REJECTS_TRAILER])
        rows = reject_frames(journal, len(header), lineage=lineage, safe=layout.escaped)
        for frame in rows:
            table.write_frame(frame)


def write_pending(rows: Iterable[int], out_dir: Path) -> int:
    """An abandoned run's records that never got an outcome; returns how many."""
    count = 0
    with replaced_text(out_dir / PENDING_NAME) as handle:
        writer = csv.writer(handle)
        writer.writerow(["row"])
        for row in rows:
            writer.writerow([row])
            count += 1
    return count


def _text(text: str | None) -> str:
    return text or ""


def sheet_safe(text: str | None) -> str:
    """The cell as written: a leading apostrophe where a spreadsheet would see a formula
    (after any apostrophes, so that reading back removes exactly the one added)."""
    if not text:
        return ""
    first = text.lstrip("'")[:1]
    return f"'{text}" if first and first in FORMULA_CHARS else text


def write_missing(
    ids: list[str], journal: Journal, out_dir: Path, layout: Layout = Layout()
) -> None:
    """Incremental sync: customers gone from the export since the last run, and what was
    done. Always CSV (with ``layout``'s BOM and delimiter): a list of ids for a script."""
    done = journal.deactivations()
    with open_table(out_dir, MISSING_NAME.removesuffix(".csv"), Layout("csv", *_csv(layout))) as t:
        t.writerow(MISSING_HEADER)
        for external_id in ids:
            status, *rest = done.get(external_id, (None,) * 5)
            cells = _blank_nones((external_id, _MISSING_LABELS.get(status, "listed"), *rest))
            t.writerow([sheet_safe(c) if isinstance(c, str) else c for c in cells])


def _csv(layout: Layout) -> tuple[bool, str]:
    return layout.bom, layout.delimiter


def write_summary(summary: RunSummary, out_dir: Path) -> None:
    with replaced_text(out_dir / SUMMARY_NAME) as handle:
        json.dump(summary_json(summary), handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def _blank_nones(values: tuple[object, ...]) -> list[object]:
    return ["" if v is None else v for v in values]


def rejects_columns(
    columns: list[str], header: list[str], drop: list[str]
) -> tuple[list[str], list[str]]:
    """Unique names and original header names of the columns the rejects file may carry.

    Columns in ``drop_columns`` are never copied. When the input is an earlier run's
    rejects.csv, its trailing _row/_stage/_reason/_raw describe that run, not the customer,
    and so do the source_row/source_file before them (a rejects file of a fed back one).
    """
    dropped = {d.strip().casefold() for d in drop}
    pairs = list(zip(columns, header, strict=True))
    if tuple(header[-len(REJECTS_TRAILER) :]) == REJECTS_TRAILER:
        pairs = pairs[: -len(REJECTS_TRAILER)]
        if tuple(h for _, h in pairs[-len(LINEAGE) :]) == LINEAGE:
            pairs = pairs[: -len(LINEAGE)]
    kept = [(c, h) for c, h in pairs if h.strip().casefold() not in dropped]
    return [c for c, _ in kept], [h for _, h in kept]
