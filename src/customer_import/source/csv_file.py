"""CSV and TSV files (gzipped too): the delimiter, the header, then numbered batches.

Bytes are decoded once up front (``encoding.resolve_encoding``) to find undecodable bytes before
anything is sent; then ``csv_stretches`` reads the records (Polars the clean stretches,
``csv_records.RecordParser`` the rest), from the file's own bytes when it is UTF-8. When the
header has a column listed in ``drop_columns`` (a plaintext ``Password``), a broken record's raw
text is withheld: its fields cannot be told apart reliably, so that column's value could not be
cut out of it. The tool's own rejects file, read back, loses the apostrophe its writer put
before the cells a spreadsheet would take for formulas (``outputs.files.sheet_safe``): its
values are then the ones first read.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

import polars as pl

from customer_import.config import SourceConfig
from customer_import.contracts import FORMULA_CHARS, REJECTS_TRAILER, Batch, ParseFailure
from customer_import.errors import InputError
from customer_import.source.csv_records import Broken, RecordParser
from customer_import.source.csv_stretches import Stretches, records_batch
from customer_import.source.encoding import resolve_encoding
from customer_import.source.files import READ_ERRORS, open_binary, open_text
from customer_import.source.table import Source, rebatched

_DELIMITERS: Final = (",", ";", "\t", "|")  # also the tie-break order
_HEAD_BYTES: Final = 1 << 16  # enough for a header line
_UTF8: Final = ("utf-8", "utf-8-sig")  # codec names as resolve_encoding gives them
_ESCAPED: Final = "^'('*[" + "".join("\\" + c if c in "-^]\\" else c for c in FORMULA_CHARS) + "])"


def open_csv(
    config: SourceConfig,
    path: Path,
    name: str,
    suffix: str,
    gzipped: bool,
    pinned: frozenset[str] = frozenset(),
) -> Source:
    """Read the header of the file at ``path``; ``name`` (a path or URL) is used in messages.

    The tool's own rejects file is read as it was written, whatever the job's ``encoding``,
    ``delimiter`` and ``has_header``; ``pinned`` names those given for this input on the
    command line, which are kept."""
    own_format = _own_rejects_format(path, gzipped, config, pinned)
    if own_format is not None:
        encoding, delimiter = own_format
        update = {"encoding": encoding, "delimiter": delimiter, "has_header": True}
        config = config.model_copy(update=update)
    codec = resolve_encoding(path, gzipped, config.encoding, name)
    first_line = _first_line(path, name, gzipped, codec)
    delimiter = _resolve_delimiter(config.delimiter, suffix, first_line)
    with open_text(path, gzipped, codec) as text:
        first = RecordParser(text, delimiter, "header").first_record()
    if isinstance(first, Broken):
        what = "header line" if config.has_header else "first line"
        raise InputError(f"{name}: unusable {what} ({first.reason}): {first.raw[:200]!r}")
    if first is None:
        raise InputError(f"{name}: no header line: the file holds only blank lines")
    header = first if config.has_header else [f"column_{i}" for i in range(1, len(first) + 1)]
    if not any(name.strip() for name in header):
        raise InputError(f"{name}: the header line has no column names")
    own_rejects = config.has_header and tuple(header[-len(REJECTS_TRAILER) :]) == REJECTS_TRAILER
    if own_rejects:
        header = [_unescaped_text(cell) for cell in header]
    backend = _CsvBackend(path, name, gzipped, codec, delimiter, header, config, own_rejects)
    return Source(path, header, codec, delimiter, backend, name=name, own_rejects=own_rejects)


def _own_rejects_format(
    path: Path, gzipped: bool, config: SourceConfig, pinned: frozenset[str]
) -> tuple[str, str] | None:
    """(encoding, delimiter) to read the tool's own rejects file with, recognised by the last
    columns of its header; None for any other file. The tool writes UTF-8 and commas, but
    ``"auto"`` also reads one a spreadsheet saved again (a BOM, Windows-1252, semicolons)."""
    encoding = config.encoding if "encoding" in pinned else "auto"
    delimiters: tuple[str, ...] = _DELIMITERS
    if "delimiter" in pinned and config.delimiter != "auto":
        delimiters = (config.delimiter,)
    try:
        with open_binary(path, gzipped) as raw:
            head = _decoded(raw.read(_HEAD_BYTES), encoding)
    except (*READ_ERRORS, LookupError):
        return None  # reading it as the job says reports the problem
    for delimiter in delimiters:
        lines = io.StringIO(head, newline=None)  # any line end: this is only the header
        try:
            header = next((r for r in csv.reader(lines, delimiter=delimiter) if r), [])
        except csv.Error:
            continue
        if tuple(header[-len(REJECTS_TRAILER) :]) == REJECTS_TRAILER:
            return encoding, delimiter
    return None


def _decoded(head: bytes, encoding: str) -> str:
    """The first bytes as text, enough to read a header by; a BOM decides the codec."""
    if head.startswith(codecs.BOM_UTF8):
        return head[len(codecs.BOM_UTF8) :].decode("utf-8", "replace")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", "replace")
    codec = "utf-8" if encoding.strip().lower() == "auto" else encoding
    return head.decode(codec, "replace")


def _first_line(path: Path, name: str, gzipped: bool, codec: str) -> str:
    with open_text(path, gzipped, codec) as text:
        for line in text:
            if line.strip():
                return line.removeprefix("\ufeff")
    raise InputError(f"{name}: no header line: the file holds only blank lines")


def _resolve_delimiter(configured: str, suffix: str, first_line: str) -> str:
    if configured != "auto":
        return configured
    if suffix == ".tsv":
        return "\t"
    return _detect_delimiter(first_line)


def _detect_delimiter(line: str) -> str:
    """The candidate seen most often outside quotes; ties go to the earlier of ``, ; \\t |``."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts.values())
    return next((d for d in _DELIMITERS if counts[d] == best and best > 0), ",")


class _CsvBackend:
    record_parser_only = False
    """Read every record with the record parser, not clean stretches with Polars: the
    reference the equivalence tests compare the Polars reader with."""

    def __init__(
        self,
        path: Path,
        name: str,
        gzipped: bool,
        codec: str,
        delimiter: str,
        header: list[str],
        config: SourceConfig,
        own_rejects: bool = False,
    ) -> None:
        self._path, self._name, self._gzipped, self._codec = path, name, gzipped, codec
        self._own_rejects = own_rejects
        self._delimiter, self._width = delimiter, len(header)
        self._has_header, self._batch_size = config.has_header, config.batch_size
        self._withhold_raw = _has_dropped_column(header, config.drop_columns)

    def batches(self, select: list[int], names: list[str], first: int | None) -> Iterator[Batch]:
        size = min(first or self._batch_size, self._batch_size)  # ``first`` only ever caps
        expected = "header" if self._has_header else "first record"
        try:
            if self.record_parser_only:
                with open_text(self._path, self._gzipped, self._codec) as text:
                    yield from self._read(self._parsed(text, select, names, expected), size)
                return
            width, has_header = self._width, self._has_header
            with (
                self._utf8() as read,
                Stretches(read, self._delimiter, width, has_header, expected) as stretches,
            ):
                yield from self._read(stretches.parts(select, names, self._batch_size), size)
        except READ_ERRORS as exc:
            # The bytes were checked at open; this is a file changed or damaged since then.
            raise InputError(f"{self._name}: cannot read the file: {exc}") from exc

    @contextmanager
    def _utf8(self) -> Iterator[Callable[[int], bytes]]:
        """The text as UTF-8 bytes, ``read(n)`` at a time. A UTF-8 file gives its own bytes:
        what decoding and encoding again would give, without the CPU (they were checked at
        open; a block no longer UTF-8 raises the decoding error in ``csv_stretches``), less
        the BOM a ``utf-8-sig`` decoder drops. Any other codec's text is encoded."""
        if self._codec not in _UTF8:
            with open_text(self._path, self._gzipped, self._codec) as text:
                yield lambda size: text.read(size).encode("utf-8")
            return
        with open_binary(self._path, self._gzipped) as raw:
            yield _without_bom(raw.read) if self._codec == "utf-8-sig" else raw.read

    def _read(self, parts: Iterator[Batch], size: int) -> Iterator[Batch]:
        for batch in rebatched(parts, size, self._batch_size):
            if self._withhold_raw and batch.failures:
                batch = Batch(batch.frame, [_withheld(f) for f in batch.failures])
            if self._own_rejects:
                batch = Batch(_unescaped(batch.frame), batch.failures)
            yield batch

    def _parsed(
        self, text: IO[str], select: list[int], names: list[str], expected: str
    ) -> Iterator[Batch]:
        """Every record read by the record parser (what the Polars reader is compared with)."""
        parser = RecordParser(text, self._delimiter, expected)
        if self._has_header:
            parser.first_record()
        number, seen_broken = 0, parser.broken
        while chunk := parser.read(self._batch_size, self._width):
            # The parser's counter spares a scan of the chunk when nothing in it is broken.
            has_broken, seen_broken = parser.broken != seen_broken, parser.broken
            yield records_batch(chunk, number, has_broken, select, names)
            number += len(chunk)

    def close(self) -> None:
        pass  # each batches() call opens and closes its own stream


def _without_bom(read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """``read`` less a UTF-8 BOM at the start, as the ``utf-8-sig`` decoder drops it."""
    started = False

    def read_on(size: int) -> bytes:
        nonlocal started
        if started:
            return read(size)
        started = True
        head = read(max(size, len(codecs.BOM_UTF8))).removeprefix(codecs.BOM_UTF8)
        return head or read(size)  # a file of only a BOM, or a head of only the BOM

    return read_on


def _unescaped(frame: pl.DataFrame) -> pl.DataFrame:
    """A rejects file's cells without the apostrophe its writer added before a formula."""
    return frame.with_columns(pl.col(pl.String).str.replace(_ESCAPED, "${1}"))


def _unescaped_text(cell: str) -> str:
    first = cell.lstrip("'")[:1]
    return cell[1:] if cell.startswith("'") and first and first in FORMULA_CHARS else cell


def _has_dropped_column(header: list[str], drop_columns: list[str]) -> bool:
    dropped = {name.strip().casefold() for name in drop_columns}
    return any(name.strip().casefold() in dropped for name in header)


def _withheld(failure: ParseFailure) -> ParseFailure:
    """A broken line without its text: its fields cannot be told apart reliably, so the value
    of a ``drop_columns`` column (a plaintext password) cannot be cut out of it."""
    withheld = "the line's text is withheld: the file has a column in drop_columns"
    return ParseFailure(failure.row, "", f"{failure.reason} ({withheld})")
