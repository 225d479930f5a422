"""results.xlsx and rejects.xlsx: one sheet, every cell a text cell (``[output] format``).

Every value is written with ``write_string``, never as a number, a date or a formula: an id
keeps its leading zeros, a phone number stays text, and ``=HYPERLINK(...)`` is shown, not run.
So no apostrophe is put before a formula character as in the CSV files, and a workbook read
back (``source.excel_file``) gives exactly the values written. The header row is frozen and
the columns are as wide as their first rows need. The workbook is written row by row
(xlsxwriter's ``constant_memory``) to a temporary name in the folder, then renamed, so a
reader never sees half of one. xlsxwriter comes with the ``excel`` extra; a job that asks for
a workbook without it stops before it reads anything (``require_xlsxwriter``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Final

from customer_import.durable import replaced_bytes
from customer_import.errors import ConfigError

if TYPE_CHECKING:
    import polars as pl

SHEET_ROWS: Final = 1_048_576
"""The most rows a worksheet holds, the header's included."""
CELL_CHARS: Final = 32_767
"""The most characters a cell holds: a longer value is cut there."""
EXTRA: Final = "pip install 'customer-import[excel]'"
_WIDTH_ROWS: Final = 200  # rows the column widths are measured on
_MAX_WIDTH: Final = 60
_OPTIONS: Final = {
    "constant_memory": True,  # rows go to disk as written: memory does not grow with the file
    "strings_to_numbers": False,
    "strings_to_formulas": False,
    "strings_to_urls": False,
}


def require_xlsxwriter() -> ModuleType:
    """The xlsxwriter module; ConfigError (exit 2) naming the extra when it is not installed."""
    return _module("xlsxwriter", "writing .xlsx files")


def _module(name: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"{what} needs the excel extra: {EXTRA}") from exc


class SheetWriter:
    """``csv.writer``'s two methods, onto a worksheet: each value a text cell."""

    def __init__(self, sheet: object) -> None:
        self._sheet = sheet
        self._row = 0
        self._widths: list[int] = []

    def writerow(self, row: Sequence[object]) -> None:
        if self._row >= SHEET_ROWS:
            raise ValueError(f"more rows than a worksheet holds ({SHEET_ROWS:,})")
        write = self._sheet.write_string  # type: ignore[attr-defined]
        cells = ["" if v is None else str(v)[:CELL_CHARS] for v in row]
        for column, text in enumerate(cells):
            if text:  # an empty cell is left blank: it reads back as ""
                write(self._row, column, text)
        if self._row < _WIDTH_ROWS:
            self._measure(cells)
        self._row += 1

    def writerows(self, rows: Iterable[Sequence[object]]) -> None:
        for row in rows:
            self.writerow(row)

    def write_frame(self, frame: pl.DataFrame) -> None:
        self.writerows(frame.iter_rows())

    def _measure(self, cells: list[str]) -> None:
        self._widths += [0] * (len(cells) - len(self._widths))
        for column, text in enumerate(cells):
            self._widths[column] = max(self._widths[column], min(len(text) + 2, _MAX_WIDTH))

    def finish(self) -> None:
        """Widths and the frozen header row (xlsxwriter places them before the rows)."""
        for column, width in enumerate(self._widths):
            self._sheet.set_column(column, column, width)  # type: ignore[attr-defined]
        self._sheet.freeze_panes(1, 0)  # type: ignore[attr-defined]


@contextmanager
def workbook(path: Path, sheet_name: str) -> Iterator[SheetWriter]:
    """A one-sheet workbook at ``path``, written to a temporary name in the same folder, then
    renamed; mode 0600. StorageFault when it cannot be written: the file before it stays."""
    xlsxwriter = require_xlsxwriter()
    with replaced_bytes(path) as handle:
        book = xlsxwriter.Workbook(handle, _OPTIONS)
        try:
            writer = SheetWriter(book.add_worksheet(sheet_name))
            yield writer
            writer.finish()
        finally:
            book.close()  # on an error too: its row buffer is a temporary file
