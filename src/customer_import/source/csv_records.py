"""CSV records from a text stream: field lists, or ``Broken`` ones with their line's raw text.

Python's ``csv`` module (C speed, ``strict=True``) parses a stream of physical lines. The lines
come from ``TextIOWrapper.readlines`` chunks chained at C speed; ``_LineFeed`` keeps the chunks
from the current record's first line on, so a broken record's raw text is known and memory stays
flat. ``csv.reader.line_num`` says which physical lines each record used.

Broken records (each is returned as a ``Broken`` and reading continues):
    * one physical line with the wrong number of fields;
    * a record spanning several lines whose field count is wrong, or a quote error (a quote
      that never closes before EOF, text after a closing quote, a field over the csv limit):
      only its FIRST physical line is the broken record, and parsing restarts at the next
      line, so one bad quote cannot swallow the rest of the file. A multi-line quoted field
      with the right field count is one good record.
    * Stray quote inside a quoted field (``"ABC"S XYZ"``): with ``strict=True`` the csv module
      rejects a closing quote followed by anything but a delimiter or line end, so the line is
      a broken record ("stray quote ..."), never a value with a silently dropped quote and never
      values shifted into other columns. A quote inside an unquoted field (``5'11"``) is kept.
"""

from __future__ import annotations

import csv
import gc
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import IO, Any, Final

#: Characters per readlines() chunk: big enough to amortise, small in memory.
_LINES_HINT: Final = 1 << 16


@dataclass(frozen=True, slots=True)
class Broken:
    raw: str
    reason: str


Record = list[str] | Broken


class _LineFeed:
    """Physical lines of a text stream, kept from the first line of the current record on.

    ``lines`` is the iterator the csv reader consumes; ``done`` is the number of the last line of
    the last finished record (lines are numbered from 1), so earlier chunks can be dropped.
    """

    def __init__(self, text: IO[str], at_start: bool = True) -> None:
        self._text = text
        self._at_start = at_start  # only the text's first line may start with a BOM to drop
        self._chunks: deque[list[str]] = deque()
        self._first = 1  # number of the first line of self._chunks[0]
        self.done = 0
        self.lines: Iterator[str] = chain.from_iterable(self._read_chunks())

    def _read_chunks(self) -> Iterator[list[str]]:
        while chunk := self._text.readlines(_LINES_HINT):
            if self._at_start and chunk[0].startswith("\ufeff"):
                chunk[0] = chunk[0][1:]  # a BOM the codec kept (e.g. explicit utf-16-le)
            self._at_start = False
            while self._chunks and self._first + len(self._chunks[0]) <= self.done:
                self._first += len(self._chunks.popleft())
            self._chunks.append(chunk)
            yield chunk

    def line(self, number: int) -> str:
        index = number - self._first
        for chunk in self._chunks:
            if index < len(chunk):
                return chunk[index]
            index -= len(chunk)
        raise IndexError(number)


class RecordParser:
    """Records from physical lines: field lists, or ``Broken`` with the line's raw text."""

    def __init__(self, text: IO[str], delimiter: str, expected: str, at_start: bool = True) -> None:
        """``at_start``: ``text`` begins at the start of the file (whose BOM is dropped), not
        at a line in its middle (``csv_stretches`` hands over a dirty stretch)."""
        self._feed = _LineFeed(text, at_start)
        self._delimiter = delimiter
        self._expected = expected  # what the field count is compared with, for messages
        self.broken = 0  # broken records produced so far
        self._reader, self._base = self._new_reader([])

    def _new_reader(self, replay: list[str]) -> tuple[Any, int]:
        # The reader's line_num 1 is the line after the last finished record.
        lines = chain(replay, self._feed.lines)
        return csv.reader(lines, delimiter=self._delimiter, strict=True), self._feed.done

    @property
    def lines_done(self) -> int:
        """Physical lines read by the records finished so far (blank lines included)."""
        return self._feed.done

    def first_record(self) -> Record | None:
        """The first non-blank record, with any field count (the header)."""
        return next(iter(self.read(1, None)), None)

    def read(self, limit: int, width: int | None) -> list[Record]:
        """The next ``limit`` non-blank records (fewer at EOF); ``width``: expected field count."""
        out: list[Record] = []
        going = True
        with _gc_paused():
            while going and len(out) < limit:
                try:
                    going = self._fill(out, limit, width)
                except csv.Error as exc:
                    spanning = self._base + self._reader.line_num > self._feed.done + 1
                    out.append(self._restart(_quote_reason(str(exc), spanning)))
        return out

    def _fill(self, out: list[Record], limit: int, width: int | None) -> bool:
        """Append records to ``out``; True when it holds ``limit`` or the reader restarted.

        The hot loop, kept flat for speed: one-line records with the right field count take the
        first branch. Single-column files always take the slow path: a blank line looks like a
        one-field record there.
        """
        reader, base, feed = self._reader, self._base, self._feed
        fast_width = width if width is not None and width > 1 else -1
        append, room, last = out.append, limit - len(out), feed.done
        for row in reader:
            end = base + reader.line_num
            if end == last + 1 and len(row) == fast_width:
                append(row)
            elif end > last + 1 and width is not None and len(row) != width:
                append(self._restart(_spanning_reason(len(row), width, self._expected)))
                return True
            elif (record := self._settle(row, end, width)) is not None:
                append(record)
            else:
                room += 1  # a blank line: nothing appended
            feed.done = last = end
            room -= 1
            if not room:
                return True
        return False

    def _settle(self, row: list[str], end: int, width: int | None) -> Record | None:
        """A record that is good as read, blank (None), or one line with a wrong field count."""
        start = self._feed.done + 1
        if start == end and len(row) <= 1 and not self._feed.line(start).strip():
            return None
        if width is None or len(row) == width:
            return row
        return self._broken(start, f"line has {len(row)} fields, the {self._expected} has {width}")

    def _restart(self, reason: str) -> Broken:
        """The current record's first line is broken; parse again from its second line."""
        start = self._feed.done + 1
        end = self._base + self._reader.line_num
        replay = [self._feed.line(n) for n in range(start + 1, end + 1)]
        broken = self._broken(start, reason)
        self._feed.done = start
        self._reader, self._base = self._new_reader(replay)
        return broken

    def _broken(self, number: int, reason: str) -> Broken:
        self.broken += 1
        return Broken(_without_line_break(self._feed.line(number)), reason)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector while a batch of row lists is built.

    Each retained row list counts as a new container, so the collector would run every few
    hundred rows and rescan the growing batch: about a fifth of the read time. Lists of strings
    cannot form cycles. The threads preparing earlier batches run meanwhile: reference counting
    still frees their objects, and any collection they need waits for the end of this batch.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _spanning_reason(fields: int, width: int | None, expected: str) -> str:
    return (
        f"unbalanced quote: a quoted field opened on this line runs over the following lines "
        f"and gives {fields} fields, the {expected} has {width}. Reading restarts at the next line"
    )


def _quote_reason(message: str, spanning: bool) -> str:
    """A person-readable reason for a csv.Error raised while reading one record."""
    if "field larger than field limit" in message:
        limit = csv.field_size_limit()
        return f"a field is over {limit:,} characters, or a quote opened on this line never closes"
    if "unexpected end of data" in message:
        return "unbalanced quote: a quoted field opened on this line never closes"
    if spanning:
        return (
            f"unbalanced quote: a quoted field opened on this line runs over the following lines "
            f"(csv: {message}). Reading restarts at the next line"
        )
    if "expected after" in message:
        return f'stray quote inside a quoted field (csv: {message}). A quote in one is written ""'
    return f"cannot parse the line (csv: {message})"


def _without_line_break(line: str) -> str:
    if line.endswith("\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(("\n", "\r")) else line
