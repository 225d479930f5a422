"""Excel workbooks (.xlsx): one sheet read whole with calamine (``fastexcel``), every cell as text.

The first sheet, or ``[source] sheet`` by name. No type is inferred: a text cell is read as it
is (``00123`` keeps its zeros), a number cell as its shortest text (``42``, never ``42.0``;
``12125550101`` for a phone typed as a number), a boolean as ``true``/``false``; a date cell
as ``2024-01-02 00:00:00`` whatever its display format, so dates meant as other text must be
stored as text. Rows whose every cell is empty are not records and get no number, as blank
lines in a CSV (a cell holding spaces is not empty: that row is a record); the first other row
is the header (unless ``has_header = false``). Record N is then the Nth non-blank row below
the header: the sheet's row N + 1 when it has no blank rows. Columns right of the header's
last name (a note typed beside the table) are not read; a warning says so when they hold
values.

The tool's own rejects.xlsx (its header ends ``_row,_stage,_reason,_raw``) is read as it was
written: its text cells need no formula prefix, so nothing is taken off them. A sheet holds at
most 1,048,576 rows, so reading it whole is bounded; the batches are slices of that frame.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import polars as pl

from customer_import.config import SourceConfig
from customer_import.contracts import REJECTS_TRAILER, ROW, Batch
from customer_import.errors import ConfigError, InputError
from customer_import.source.table import Source

log = logging.getLogger("customer_import")
EXTRA: Final = "pip install 'customer-import[excel]'"


def open_excel(config: SourceConfig, path: Path, name: str) -> Source:
    """Read the sheet of the workbook at ``path``; ``name`` (a path or URL) is used in messages."""
    rows = _records(_sheet(path, name, config.sheet))
    if rows.height == 0:
        raise InputError(f"{name}: the sheet holds only empty rows; expected a header row")
    first = list(rows.row(0))
    width = _named_width(first)
    own_rejects = tuple(first[:width][-len(REJECTS_TRAILER) :]) == REJECTS_TRAILER  # a header
    if config.has_header or own_rejects:
        header, rows = first[:width], _named_columns(rows, width, name).slice(1)
    else:
        header = [f"column_{i}" for i in range(1, rows.width + 1)]
    if not any(cell.strip() for cell in header):
        raise InputError(f"{name}: the header row has no column names")
    backend = _SheetBackend(rows, config.batch_size)
    return Source(path, header, "xlsx", None, backend, name=name, own_rejects=own_rejects)


def _named_width(first: list[str]) -> int:
    """The header's width: the cells after its last name left out."""
    width = len(first)
    while width and not first[width - 1].strip():
        width -= 1
    return width


def _named_columns(rows: pl.DataFrame, width: int, name: str) -> pl.DataFrame:
    """The columns under the header's names; a warning when those after hold values."""
    if 0 < width < rows.width:
        beyond = rows.select(pl.nth(range(width, rows.width)))
        if beyond.select(pl.any_horizontal(pl.all() != "").any()).item():
            log.warning(
                "%s: columns after the header's last name (from column %d) hold values: they"
                " are not read",
                name,
                width + 1,
            )
        rows = rows.select(pl.nth(range(width)))
    return rows


def _fastexcel() -> ModuleType:
    try:
        return importlib.import_module("fastexcel")
    except ImportError as exc:
        raise ConfigError(f"reading .xlsx files needs the excel extra: {EXTRA}") from exc


def _sheet(path: Path, name: str, sheet: str | None) -> pl.DataFrame:
    """Every row of the sheet, header included, every column text (null for an empty cell)."""
    fastexcel = _fastexcel()
    try:
        book = fastexcel.read_excel(path)
        wanted: Any = 0 if sheet is None else sheet
        if sheet is not None and sheet not in book.sheet_names:
            known = ", ".join(repr(s) for s in book.sheet_names)
            raise InputError(f"{name}: no sheet {sheet!r}; the workbook's sheets are {known}")
        frame: pl.DataFrame = book.load_sheet(wanted, header_row=None, dtypes="string").to_polars()
    except fastexcel.FastExcelError as exc:
        first = str(exc).strip().split("\n", 1)[0]
        raise InputError(f"{name}: not a readable .xlsx workbook: {first}") from exc
    return frame.select(pl.all().cast(pl.String))


def _records(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows that hold something, empty cells as ""; columns named by position."""
    frame = frame.rename({c: str(i) for i, c in enumerate(frame.columns)})
    frame = frame.with_columns(pl.all().fill_null(""))
    if frame.width == 0:
        return frame
    blank = pl.all_horizontal(pl.all() == "")
    return frame.filter(~blank)


class _SheetBackend:
    """Slices of the sheet read at open: numbered from 1, ``first`` capping the first."""

    def __init__(self, rows: pl.DataFrame, batch_size: int) -> None:
        self._rows, self._batch_size = rows, batch_size

    def batches(self, select: list[int], names: list[str], first: int | None) -> Iterator[Batch]:
        picked = self._rows.select(
            pl.int_range(1, self._rows.height + 1, dtype=pl.Int64).alias(ROW),
            *(pl.nth(i).alias(n) for i, n in zip(select, names, strict=True)),
        )
        start, size = 0, min(first or self._batch_size, self._batch_size)
        while start < picked.height:
            yield Batch(picked.slice(start, size), [])
            start, size = start + size, self._batch_size

    def close(self) -> None:
        """Nothing stays open: the sheet was read whole."""
