"""The tool's own tables read back: rejects for report.html's reasons, shards' files to merge.

A CSV file is read as it was written, whatever ``csv_bom`` and ``csv_delimiter`` said: the BOM
is skipped (``utf-8-sig``) and the delimiter is the one that splits the header into the columns
the tool writes (a results header starts ``row``, a rejects header ends ``_row,_stage,_reason,
_raw``, a missing.csv header starts ``externalId``). A workbook is read with calamine, every
cell as text (``source.excel_file`` reads one as an input).
"""

from __future__ import annotations

import csv
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import polars as pl

from customer_import.contracts import REJECTS_TRAILER

_DELIMITERS: Final = (",", ";", "\t", "|")
_FIRST_COLUMNS: Final = ("row", "externalId")


def read_rows(path: Path) -> Iterator[list[str]]:
    """The table's rows, its header first; a missing file has none."""
    if not path.is_file():
        return
    if path.suffix == ".xlsx":
        yield from (list(row) for row in _sheet(path).rows())
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        delimiter = csv_delimiter(handle.readline())
        handle.seek(0)
        yield from csv.reader(handle, delimiter=delimiter)


def read_table(path: Path) -> tuple[list[str], pl.DataFrame]:
    """The header, and the rows below it as text columns named by position."""
    if path.suffix == ".xlsx":
        frame = _sheet(path)
    else:
        frame = pl.read_csv(
            path, separator=written_delimiter(path), has_header=False, infer_schema=False
        )
    frame = frame.rename({c: str(i) for i, c in enumerate(frame.columns)})
    if frame.is_empty():
        return [], frame
    return [cell or "" for cell in frame.row(0)], frame.slice(1).fill_null("")


def written_delimiter(path: Path) -> str:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return csv_delimiter(handle.readline())


def _sheet(path: Path) -> pl.DataFrame:
    fastexcel = importlib.import_module("fastexcel")
    sheet = fastexcel.read_excel(path).load_sheet(0, header_row=None, dtypes="string")
    frame: pl.DataFrame = sheet.to_polars()
    return frame.with_columns(pl.all().cast(pl.String).fill_null(""))


def csv_delimiter(header_line: str) -> str:
    """The delimiter that splits ``header_line`` into a header the tool writes; "," if none."""
    for delimiter in _DELIMITERS:
        header = next(csv.reader([header_line.removeprefix("\ufeff")], delimiter=delimiter), [])
        if tuple(header[-len(REJECTS_TRAILER) :]) == REJECTS_TRAILER:
            return delimiter
        if header[:1] and header[0] in _FIRST_COLUMNS and len(header) > 1:
            return delimiter
    return ","
