"""A CSV text as numbered records: Polars reads the clean stretches, the record parser the rest.

The text is cut into blocks of whole lines. In each block, a line is *clean* when Polars gives
exactly what the record parser (``csv_records``) would: it ends in ``\\n`` (or ``\\r\\n``),
holds no other ``\\r``, ``\\n`` or NUL, does not start with U+FEFF (Polars drops a BOM), is
shorter than the csv field limit, and has the header's number of fields, each either unquoted
without a quote character or wholly quoted (``"Doe, Jr."``, a doubled quote inside). One
regular expression, run by Polars over the block's lines, says which are. A run of clean
lines is one record each, so Polars' own reader parses it (every column text, no inference)
and the records are numbered in order.

Anything else (a blank line, a ragged line, a quote that does not close on its line, a bare
CR, a quote inside an unquoted field) starts a *dirty stretch*: the record parser reads from
that line on, exactly as it would read the whole file, so numbering, ``_raw`` and every
reason stay the same. It is handed one line at a time, and the stretch ends as soon as the
parser has finished a record at the end of what it was handed and the next line is clean:
the parser is then between records, where reading the whole file would be too. A record
whose quoted field runs over several lines therefore stays one record. Should Polars ever
disagree with the checks (an error, a different row count), the stretch is read by the
record parser instead.
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_left
from collections.abc import Iterator
from operator import itemgetter
from typing import IO, Final, NamedTuple, cast

import polars as pl

from customer_import.contracts import ROW, Batch, ParseFailure
from customer_import.source.csv_records import Broken, Record, RecordParser

#: Characters read at a time: enough lines (about 12,000 of an 8-column export) for Polars to
#: amortise its start; 4 M characters took as much CPU and 70 MB more memory.
BLOCK_CHARS: Final = 1 << 20
#: Lines of a dirty stretch fetched from Polars at a time.
_WINDOW: Final = 256
_QUOTE: Final = '"'


def clean_line_pattern(delimiter: str, width: int) -> str | None:
    """The regular expression of a clean line (``\\n`` included), or None when no line of
    the file can be: a one-column file (a blank line would look like a record) or a
    delimiter Polars cannot take (not a single ASCII character)."""
    if width < 2 or len(delimiter) != 1 or not delimiter.isascii() or delimiter == _QUOTE:
        return None
    d = f"\\x{ord(delimiter):02x}"
    field = f'(?:"(?:[^"\\r\\n\\x00]|"")*"|[^"{d}\\r\\n\\x00]*)'
    return f"^{field}(?:{d}{field}){{{width - 1}}}\\r?\\n$"


class _Block:
    """Whole lines of the text ("units": split after each ``\\n``) and which are not clean."""

    def __init__(self, text: str, pattern: str | None) -> None:
        self.data = text.encode("utf-8")
        units = pl.Series([text]).str.split("\n", inclusive=True).explode()
        self.units = units.head(-1) if units[-1] == "" else units
        self.size = len(self.units)
        lengths = self.units.str.len_bytes()
        if pattern is None:
            self.bad: list[int] = list(range(self.size))
        else:
            # Polars drops a BOM at the start of what it reads; a line may start with U+FEFF.
            clean = self.units.str.contains(pattern) & (lengths < csv.field_size_limit())
            clean &= ~self.units.str.starts_with("\ufeff")
            self.bad = clean.not_().arg_true().to_list()
        self._ends = lengths.cum_sum()
        self._window: list[str] = []
        self._window_at = 0

    def offset(self, index: int) -> int:
        """Byte offset in ``data`` where unit ``index`` starts."""
        return 0 if index == 0 else int(self._ends[index - 1])

    def next_bad(self, index: int) -> int:
        """The first unit from ``index`` on that is not clean (``size`` when none is)."""
        found = bisect_left(self.bad, index)
        return self.bad[found] if found < len(self.bad) else self.size

    def unit(self, index: int) -> str:
        if not self._window_at <= index < self._window_at + len(self._window):
            self._window = self.units.slice(index, _WINDOW).to_list()
            self._window_at = index
        return self._window[index - self._window_at]

    def mark_bad(self, start: int, end: int) -> None:
        """Units Polars was found not to read as the checks said: the parser reads them."""
        self.bad = sorted({*self.bad, *range(start, end)})


class _Cursor:
    """The current block and unit; blocks are read from the text as they are needed."""

    def __init__(self, text: IO[str], pattern: str | None) -> None:
        self._text, self._pattern = text, pattern
        self._rest, self._eof = "", False
        self.block: _Block | None = None
        self.index = 0

    def ready(self) -> _Block | None:
        """The block holding the current unit; None at the end of the text."""
        while self.block is None or self.index >= self.block.size:
            text = self._next_text()
            if text is None:
                return None
            self.block, self.index = _Block(text, self._pattern), 0
        return self.block

    def _next_text(self) -> str | None:
        while not self._eof:
            read = self._text.read(BLOCK_CHARS)
            if not read:
                self._eof = True
                break
            text = self._rest + read
            cut = _cut(text)
            self._rest = text[cut:]
            if cut:
                return text[:cut]
        text, self._rest = self._rest, ""
        return text or None


def _cut(text: str) -> int:
    """Where a block of whole lines ends: after the last ``\\n``; in a text without one,
    after the last ``\\r`` that is not its last character (it could be half a ``\\r\\n``)."""
    cut = text.rfind("\n") + 1
    if cut == 0:
        cut = text.rfind("\r", 0, len(text) - 1) + 1
    return cut


class _Feed:
    """What the record parser reads in a dirty stretch: one unit at a time, as physical lines.

    Ends (the parser sees the end of the text) once the parser has finished a record at the end
    of what it was handed and the next unit is clean, unless ``holding`` (the header is read).
    """

    def __init__(self, cursor: _Cursor) -> None:
        self._cursor = cursor
        self.handed = 0
        self.holding = False
        self.parser: RecordParser | None = None

    def readlines(self, hint: int = -1, /) -> list[str]:
        block = self._cursor.ready()
        if block is None or self._between_records(block):
            return []
        unit = block.unit(self._cursor.index)
        self._cursor.index += 1
        lines = _physical_lines(unit)
        self.handed += len(lines)
        return lines

    def _between_records(self, block: _Block) -> bool:
        if self.holding or not self.handed or self.parser is None:
            return False
        return self.parser.lines_done == self.handed and block.next_bad(self._cursor.index) > (
            self._cursor.index
        )


def _physical_lines(unit: str) -> list[str]:
    """A unit as the lines a text stream read with ``newline=""`` gives (a bare CR ends one)."""
    if "\r" not in unit.removesuffix("\r\n"):
        return [unit]
    return io.StringIO(unit, newline="").readlines()


class Stretches:
    """Numbered parts of a CSV text, each read by Polars or by the record parser."""

    def __init__(
        self, text: IO[str], delimiter: str, width: int, has_header: bool, expected: str
    ) -> None:
        self._cursor = _Cursor(text, clean_line_pattern(delimiter, width))
        self._delimiter, self._width = delimiter, width
        self._has_header, self._expected = has_header, expected
        self._number = 0  # records numbered so far

    def parts(self, select: list[int], names: list[str], limit: int) -> Iterator[Batch]:
        """Batches of consecutive records (at most ``limit`` from the parser at a time; a
        clean stretch as Polars read it), numbered from 1 on, the header not counted."""
        yield from self._parsed(select, names, limit, at_start=True)
        cursor = self._cursor
        while (block := cursor.ready()) is not None:
            start, end = cursor.index, block.next_bad(cursor.index)
            if end > start:
                frame = _polars_frame(block, start, end, self._delimiter, self._width, select)
                if frame is None:
                    block.mark_bad(start, end)
                    continue
                cursor.index = end
                yield self._numbered_frame(frame, end - start, names)
            if end < block.size:
                yield from self._parsed(select, names, limit, at_start=False)

    def _numbered_frame(self, frame: pl.DataFrame, records: int, names: list[str]) -> Batch:
        first = self._number + 1
        self._number += records
        rows = pl.int_range(first, self._number + 1, dtype=pl.Int64, eager=True).alias(ROW)
        columns = [c.alias(n) for c, n in zip(frame.iter_columns(), names, strict=True)]
        return Batch(pl.DataFrame([rows, *columns]), [])

    def _parsed(
        self, select: list[int], names: list[str], limit: int, *, at_start: bool
    ) -> Iterator[Batch]:
        """A dirty stretch (at the start: the header, then up to the first clean line)."""
        feed = _Feed(self._cursor)
        parser = RecordParser(cast(IO[str], feed), self._delimiter, self._expected, at_start)
        feed.parser = parser
        if at_start and self._has_header:
            feed.holding = True
            parser.first_record()
            feed.holding = False
        while True:
            broken = parser.broken
            records = parser.read(limit, self._width)
            if records:
                yield records_batch(records, self._number, parser.broken != broken, select, names)
                self._number += len(records)
            if len(records) < limit:
                return


def _polars_frame(
    block: _Block, start: int, end: int, delimiter: str, width: int, select: list[int]
) -> pl.DataFrame | None:
    """The selected columns of clean units ``start`` to ``end``, in ``select``'s order; None
    when Polars does not give one row a unit."""
    data = block.data[block.offset(start) : block.offset(end)]
    schema = {f"column_{k}": pl.String for k in range(1, width + 1)}
    wanted = sorted(set(select)) or [0]
    try:
        frame = pl.read_csv(
            data,
            has_header=False,
            schema=schema,
            columns=wanted,
            separator=delimiter,
            quote_char=_QUOTE,
            infer_schema=False,
            empty_string_is_null=False,
            raise_if_empty=False,
            truncate_ragged_lines=False,
        )
    except pl.exceptions.PolarsError:
        return None
    if frame.height != end - start or frame.null_count().sum_horizontal().item():
        return None
    return frame.select(f"column_{k + 1}" for k in select)


def records_batch(
    chunk: list[Record], before: int, has_broken: bool, select: list[int], names: list[str]
) -> Batch:
    """Records numbered from ``before + 1``; the common all-good case skips the per-record loop."""
    if not has_broken:
        numbers = range(before + 1, before + len(chunk) + 1)
        return Batch(_frame(numbers, cast(list[list[str]], chunk), select, names), [])
    rows, good, failures = [], [], []
    for number, record in enumerate(chunk, before + 1):
        if isinstance(record, Broken):
            failures.append(ParseFailure(number, record.raw, record.reason))
        else:
            rows.append(record)
            good.append(number)
    return Batch(_frame(good, rows, select, names), failures)


def _frame(
    numbers: range | list[int], rows: list[list[str]], select: list[int], names: list[str]
) -> pl.DataFrame:
    columns = [pl.Series(ROW, numbers, dtype=pl.Int64)]
    for index, name in zip(select, names, strict=True):
        # map(itemgetter) runs in C: one pass per selected column, none for the others.
        columns.append(pl.Series(name, list(map(itemgetter(index), rows)), dtype=pl.String))
    return pl.DataFrame(columns)


class _Part(NamedTuple):
    first: int
    batch: Batch


def rebatched(parts: Iterator[Batch], first: int, size: int) -> Iterator[Batch]:
    """The parts' records regrouped into batches of ``first``, then ``size`` records."""
    held: list[Batch] = []
    count, want, number = 0, first, 1
    for batch in parts:
        part: _Part | None = _Part(number, batch)
        number += batch.records
        while part is not None:
            head, part = _split(part, want - count)
            held.append(head)
            count += head.records
            if count == want:
                yield _joined(held)
                held, count, want = [], 0, size
    if held:
        yield _joined(held)


def _split(part: _Part, room: int) -> tuple[Batch, _Part | None]:
    """The first ``room`` records of a part, and the rest (None when nothing is left)."""
    batch = part.batch
    if batch.records <= room:
        return batch, None
    cut = part.first + room  # the first record number left for the rest
    failures = [f for f in batch.failures if f.row < cut]
    rows = room - len(failures)
    head = Batch(batch.frame.slice(0, rows), failures)
    rest = Batch(batch.frame.slice(rows), [f for f in batch.failures if f.row >= cut])
    return head, _Part(cut, rest)


def _joined(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    failures = [f for b in batches for f in b.failures]
    return Batch(pl.concat([b.frame for b in batches], rechunk=True), failures)
