"""A CSV text as numbered records: Polars reads the clean stretches, the record parser the rest.

The text comes as UTF-8 bytes (a UTF-8 file's own, see ``csv_file``), cut into blocks of whole
lines. In each block, a line is *clean* when Polars gives exactly what the record parser
(``csv_records``) would: it ends in ``\\n`` (or ``\\r\\n``), holds no other ``\\r``, ``\\n`` or
NUL, does not start with U+FEFF (Polars drops a BOM), is shorter than the csv field limit, and
has the header's number of fields, each either unquoted without a quote character or wholly
quoted (``"Doe, Jr."``, a doubled quote inside). One regular expression says which are; it runs
only over the lines that hold a quote. The others are judged by the block's *skeleton*, its
bytes less all but delimiters, quotes, CR, LF and NUL: a line is clean when its skeleton is the
header's delimiters and its line end, which one comparison finds for a whole run of lines. A
block with a bare CR, a line-start U+FEFF, a line near the field limit, quotes on many lines or
no final ``\\n`` has the expression run by Polars over every line instead. A run of clean lines
is one record each, so Polars' own reader parses it (every column text, no inference) and the
records are numbered in order.

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

import codecs
import csv
import io
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import IO, Final, cast

import polars as pl

from customer_import.contracts import ROW, Batch, ParseFailure
from customer_import.source.csv_records import Broken, Record, RecordParser
from customer_import.threads import OrderedMap

#: Bytes read at a time: enough lines (about 12,000 of an 8-column export) for Polars to
#: amortise its start; 4 MB took as much CPU and 70 MB more memory.
BLOCK_BYTES: Final = 1 << 20
#: Lines of a dirty stretch fetched from Polars at a time.
_WINDOW: Final = 256
_QUOTE: Final = '"'
#: Bytes a block has per quote at least, in its first ``_SAMPLE`` bytes, to be judged by its
#: skeleton: with more quotes the loop over the quoted lines costs more than the regular
#: expression over every line (a file that quotes every field).
_PER_QUOTE: Final = 1024
_SAMPLE: Final = 1 << 16
_BARE_CR: Final = re.compile(rb"\r(?!\n)")


def clean_line_pattern(delimiter: str, width: int) -> str | None:
    """The regular expression of a clean line (``\\n`` included, no anchors), or None when no
    line of the file can be: a one-column file (a blank line would look like a record) or a
    delimiter Polars cannot take (not a single ASCII character)."""
    if width < 2 or len(delimiter) != 1 or not delimiter.isascii() or delimiter == _QUOTE:
        return None
    d = f"\\x{ord(delimiter):02x}"
    field = f'(?:"(?:[^"\\r\\n\\x00]|"")*"|[^"{d}\\r\\n\\x00]*)'
    return f"{field}(?:{d}{field}){{{width - 1}}}\\r?\\n"


class _Checks:
    """Which lines of a block are clean: from its skeleton where it can tell, else by the
    regular expression over every line (``pattern``, for Polars)."""

    def __init__(self, body: str, delimiter: str, width: int) -> None:
        self.pattern = f"^{body}$"
        self._quoted = re.compile(body.encode())  # the same expression, byte for byte
        d = delimiter.encode()
        kept = d + b'"\r\n\x00'
        self._deleted = bytes(b for b in range(256) if b not in kept)
        self._lf, self._crlf = d * (width - 1) + b"\n", d * (width - 1) + b"\r\n"
        self._plain = {self._lf[:-1], self._crlf[:-1]}  # a clean line's skeleton, less \n

    @classmethod
    def of(cls, delimiter: str, width: int) -> _Checks | None:
        body = clean_line_pattern(delimiter, width)
        return None if body is None else cls(body, delimiter, width)

    def from_skeleton(self, data: bytes) -> tuple[int, list[int]] | None:
        """(lines, the ones not clean) of a block, or None when the regular expression must
        run over every line: see the module's docstring."""
        sample = min(len(data), _SAMPLE)
        if data.count(b'"', 0, sample) * _PER_QUOTE > sample or not data.endswith(b"\n"):
            return None
        if _risky(data, csv.field_size_limit()):
            return None
        skeleton = data.translate(None, self._deleted)
        lines, bad = 0, list[int]()
        at = data_at = 0  # where the next line starts in the skeleton, in the data
        while (quote := skeleton.find(b'"', at)) >= 0:
            # The n-th line with a quote is the same in the skeleton and in the data.
            lines += self._unquoted(skeleton[at : skeleton.rfind(b"\n", 0, quote) + 1], lines, bad)
            data_quote = data.find(b'"', data_at)
            start, data_at = data.rfind(b"\n", 0, data_quote) + 1, data.find(b"\n", data_quote) + 1
            if self._quoted.fullmatch(data, start, data_at) is None:
                bad.append(lines)
            lines += 1
            at = skeleton.find(b"\n", quote) + 1
        return lines + self._unquoted(skeleton[at:], lines, bad), bad

    def _unquoted(self, skeleton: bytes, first: int, bad: list[int]) -> int:
        """Lines in a skeleton of whole lines without a quote; those that are not the header's
        delimiters and a line end go into ``bad`` (numbered from ``first``)."""
        for line in (self._lf, self._crlf):
            if skeleton == line * (len(skeleton) // len(line)):
                return len(skeleton) // len(line)
        lines = skeleton.split(b"\n")[:-1]
        bad.extend(first + k for k, line in enumerate(lines) if line not in self._plain)
        return len(lines)


def _risky(data: bytes, limit: int) -> bool:
    """A block whose skeleton cannot tell: a CR not before a LF (the skeleton would not show
    what is between), U+FEFF at a line start, or perhaps a line of ``limit`` bytes or more
    (such a line holds, without a ``\\n``, one of the windows of ``limit // 2`` bytes)."""
    if b"\r" in data and _BARE_CR.search(data):
        return True
    bom = codecs.BOM_UTF8
    if b"\xef" in data and (data.startswith(bom) or b"\n" + bom in data):
        return True
    step = max(limit // 2, 1)
    return any(data.find(b"\n", at, at + step) < 0 for at in range(0, len(data) - step + 1, step))


class _Block:
    """Whole lines of the text ("units": split after each ``\\n``) and which are not clean.

    The units as Polars strings, and their byte offsets, are made only for a block that needs
    them: one with a dirty line, or one the skeleton cannot judge. (Bytes no longer UTF-8 fail
    Polars' parse too, whatever the columns read: the record parser's reading then raises.)"""

    def __init__(self, data: bytes, checks: _Checks | None) -> None:
        self.data = data
        self._units: pl.Series | None = None
        self._ends: pl.Series | None = None
        self._window: list[str] = []
        self._window_at = 0
        found = None if checks is None else checks.from_skeleton(data)
        self.size, self.bad = self._regex_checked(checks) if found is None else found

    @property
    def units(self) -> pl.Series:
        if self._units is None:
            units = _as_text(self.data).str.split("\n", inclusive=True).explode()
            self._units = units.head(-1) if units[-1] == "" else units
        return self._units

    def _regex_checked(self, checks: _Checks | None) -> tuple[int, list[int]]:
        units = self.units
        if checks is None:
            return len(units), list(range(len(units)))
        # Polars drops a BOM at the start of what it reads; a line may start with U+FEFF.
        clean = units.str.contains(checks.pattern)
        clean &= (units.str.len_bytes() < csv.field_size_limit()) & ~units.str.starts_with("\ufeff")
        return len(units), clean.not_().arg_true().to_list()

    def offset(self, index: int) -> int:
        """Byte offset in ``data`` where unit ``index`` starts."""
        if index in (0, self.size):
            return 0 if index == 0 else len(self.data)
        if self._ends is None:
            self._ends = self.units.str.len_bytes().cum_sum()
        return int(self._ends[index - 1])

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


def _as_text(data: bytes) -> pl.Series:
    """The block as one Polars string. Bytes that are not UTF-8 (a file changed since its
    encoding was checked) raise the UnicodeDecodeError that decoding them would."""
    try:
        return pl.Series([data]).cast(pl.String)
    except pl.exceptions.ComputeError:
        return pl.Series([data.decode("utf-8")])


class _Cursor:
    """The current block and unit. Blocks are read and judged in a thread of their own, a
    block or two ahead of the one being parsed (``threads.OrderedMap``, which hands each on
    as it is); ``close()`` ends it."""

    def __init__(self, read: Callable[[int], bytes], checks: _Checks | None) -> None:
        blocks = _blocks(read, checks)
        self._blocks = OrderedMap(_as_judged, blocks, workers=1, name="judge-lines")
        self.block: _Block | None = None
        self.index = 0

    def ready(self) -> _Block | None:
        """The block holding the current unit; None at the end of the text."""
        while self.block is None or self.index >= self.block.size:
            block = next(self._blocks, None)
            if block is None:
                return None
            self.block, self.index = block, 0
        return self.block

    def close(self) -> None:
        self._blocks.close()


def _as_judged(block: _Block) -> _Block:
    return block


def _blocks(read: Callable[[int], bytes], checks: _Checks | None) -> Iterator[_Block]:
    """The text's blocks of whole lines, each judged."""
    rest = b""
    while chunk := read(BLOCK_BYTES):
        data = rest + chunk if rest else chunk
        cut = _cut(data)
        rest = data[cut:]
        if cut:
            yield _Block(data[:cut] if cut < len(data) else data, checks)
    if rest:
        yield _Block(rest, checks)


def _cut(data: bytes) -> int:
    """Where a block of whole lines ends: after the last ``\\n``; in a text without one,
    after the last ``\\r`` that is not its last character (it could be half a ``\\r\\n``)."""
    cut = data.rfind(b"\n") + 1
    if cut == 0:
        cut = data.rfind(b"\r", 0, len(data) - 1) + 1
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
        self,
        read: Callable[[int], bytes],
        delimiter: str,
        width: int,
        has_header: bool,
        expected: str,
    ) -> None:
        """``read(n)``: the next n bytes or so of the text, in UTF-8 (empty at its end)."""
        self._cursor = _Cursor(read, _Checks.of(delimiter, width))
        self._delimiter, self._width = delimiter, width
        self._has_header, self._expected = has_header, expected
        self._number = 0  # records numbered so far

    def close(self) -> None:
        """Ends the thread that reads ahead: before the text's file is closed."""
        self._cursor.close()

    def __enter__(self) -> Stretches:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
    if frame.height != end - start or any(c.has_nulls() for c in frame.iter_columns()):
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
