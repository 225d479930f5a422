"""Read a CSV or Parquet export into numbered batches of text columns.

The first stage of the pipeline. Everything downstream sees the same shape, whatever the file:
a ``Batch`` holds a Polars frame with ``_row`` (the 1-based record number) followed by one
``pl.String`` column per source column, values exactly as read, plus the broken records whose
numbers fall in the batch's range. Record numbers are the contract with the rejects file and
resume, so they must stay exact: blank lines get no number, a broken record consumes one.

CSV design
    Bytes are decoded once up front, in chunks, to find undecodable bytes before anything is
    sent (``open_source`` fails instead of a run dying half-way). Then Python's ``csv`` module
    (C speed, ``strict=True``) parses a stream of physical lines. The lines come from
    ``TextIOWrapper.readlines`` chunks chained at C speed; ``_LineFeed`` keeps the chunks from
    the current record's first line on, so a broken record's raw text is known and memory stays
    flat. ``csv.reader.line_num`` says which physical lines each record used.

Broken records (each becomes a ``ParseFailure`` and reading continues):
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
    * When the header has a column listed in ``drop_columns`` (a plaintext ``Password``), a
      broken record's raw text is withheld: its fields cannot be told apart reliably, so that
      column's value could not be cut out of it.

Encoding: ``config.encoding`` is any codec name, but a BOM decides (UTF-8 BOM -> utf-8-sig,
UTF-16 BOM -> utf-16) unless a UTF-16/32 codec is named. ``"auto"``: the BOM, else valid
UTF-8 -> utf-8, else cp1252.

Parquet: read in batches with pyarrow (types intact), every column turned into text: integers
and integral floats as ``123``, other floats in their shortest form, NaN and null as ``""``,
booleans ``true``/``false``, dates ``2024-03-20``, timestamps ISO 8601 (``2024-03-20T10:00:00``;
tz-aware ones converted to UTC with a ``Z`` suffix; an all-zero fraction is dropped).

Remote paths (s3://, a later issue): every CSV byte stream is opened by ``_open_binary`` and
Parquet by ``pq.ParquetFile`` (which takes a file object); with ``_check_readable`` and
``Source.size`` those are the only places that assume a local file.
"""

from __future__ import annotations

import codecs
import csv
import gc
import gzip
import hashlib
import io
import json
import weakref
import zlib
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Protocol, cast

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from customer_import.config import SourceConfig
from customer_import.errors import ConfigError, InputError

#: The record number column of every batch: a name no export uses (a column called so is renamed).
ROW: Final = "__row__"

__all__ = ["Batch", "ParseFailure", "Source", "file_digest", "open_source", "unique_names"]

_CSV_SUFFIXES = (".csv", ".tsv", ".txt")  # each also gzipped: ".csv.gz"
_SUPPORTED = ".csv .tsv .txt .csv.gz .parquet"
_DELIMITERS = (",", ";", "\t", "|")  # also the tie-break order
_BYTES_CHUNK = 1 << 20
_LINES_HINT = 1 << 16  # characters per readlines() chunk: big enough to amortise, small in memory
_CSV_ERRORS = (UnicodeDecodeError, OSError, EOFError, zlib.error)


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A record that could not be split into the header's columns."""

    row: int
    """The record number this broken record would have had (1-based)."""
    raw: str
    """Its original text: one physical line, without the line break ("" when withheld because
    the file has a ``drop_columns`` column)."""
    reason: str
    """Why, e.g. "line has 7 fields, the header has 5"."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Records numbered in one range of ``batch_size`` numbers."""

    frame: pl.DataFrame
    """``_row`` (Int64) first, then one String column per selected column, in file order."""
    failures: list[ParseFailure]
    """Broken records whose numbers fall in this batch's range."""


class _Backend(Protocol):
    def batches(self, select: list[int], names: list[str]) -> Iterator[Batch]: ...

    def close(self) -> None: ...


class Source:
    """An opened export: its header is known, its records are read by ``batches()``."""

    def __init__(
        self,
        path: Path,
        header: list[str],
        encoding: str,
        delimiter: str | None,
        backend: _Backend,
    ) -> None:
        self.path = path
        self.header = header
        self.columns = unique_names(header)
        self.encoding = encoding
        self.delimiter = delimiter
        self.size = path.stat().st_size
        self._backend = backend
        # Open readers are closed by close(); weak so an abandoned one can still be collected.
        self._live: weakref.WeakSet[Iterator[Batch]] = weakref.WeakSet()

    def batches(self, columns: list[str] | None = None) -> Iterator[Batch]:
        """Read the file from the start; ``columns`` picks unique names (default: all)."""
        names = list(self.columns) if columns is None else list(columns)
        select = [self._index(name) for name in names]
        if len(set(names)) != len(names):
            raise ConfigError(f"column selection repeats a name: {names}")
        reader = self._backend.batches(select, names)
        self._live.add(reader)
        return reader

    def _index(self, name: str) -> int:
        try:
            return self.columns.index(name)
        except ValueError:
            known = ", ".join(repr(c) for c in self.columns)
            raise ConfigError(f"{self.path}: no column {name!r}; columns are {known}") from None

    def close(self) -> None:
        for reader in list(self._live):
            if isinstance(reader, Generator):
                reader.close()
        self._backend.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_source(config: SourceConfig, path: Path) -> Source:
    """Open an export and read its header; raise InputError when it cannot be read as a table."""
    path = Path(path)
    suffix, gzipped = _format_of(path)
    _check_readable(path)
    if suffix == ".parquet":
        return _open_parquet(config, path)
    return _open_csv(config, path, suffix, gzipped)


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of the file's bytes, read in chunks (resume compares it)."""
    try:
        with Path(path).open("rb") as f:
            return f"sha256:{hashlib.file_digest(f, 'sha256').hexdigest()}"
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc


def unique_names(header: list[str]) -> list[str]:
    """Header names made unique: repeats get ``_2``, ``_3``...; empty cells become ``column_N``.

    ROW is taken by the record number, so a source column of that name is renamed too."""
    named = [name if name.strip() else f"column_{i}" for i, name in enumerate(header, 1)]
    # A suffix that is some other column's own name is skipped, so real names never change.
    taken = set(named)
    used: set[str] = {ROW}
    result = []
    for name in named:
        unique, k = name, 2
        while unique in used or (unique != name and unique in taken):
            unique, k = f"{name}_{k}", k + 1
        used.add(unique)
        result.append(unique)
    return result


# --- files and formats ---------------------------------------------------------------------


def _format_of(path: Path) -> tuple[str, bool]:
    """The table format's suffix (".csv", ".tsv", ".txt", ".parquet") and whether it is gzip."""
    name = path.name.lower()
    gzipped = name.endswith(".gz")
    suffix = Path(name.removesuffix(".gz")).suffix
    if suffix in _CSV_SUFFIXES or (suffix == ".parquet" and not gzipped):
        return suffix, gzipped
    raise InputError(f"{path}: unsupported file type; expected one of {_SUPPORTED}")


def _check_readable(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path}: file not found (or not a regular file)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); expected a header line")


def _open_binary(path: Path, gzipped: bool) -> IO[bytes]:
    if gzipped:
        return cast(IO[bytes], gzip.open(path, "rb"))  # GzipFile: streamed, never loaded whole
    return path.open("rb", buffering=_BYTES_CHUNK)


def _open_text(path: Path, gzipped: bool, codec: str) -> io.TextIOWrapper:
    # newline="": line ends are left to the csv module, and raw text keeps its own CR/LF.
    return io.TextIOWrapper(_open_binary(path, gzipped), encoding=codec, newline="")


# --- encoding ------------------------------------------------------------------------------


def _resolve_encoding(path: Path, gzipped: bool, requested: str) -> str:
    """The codec to read with, after checking that the whole file decodes with it."""
    head = _read_head(path, gzipped)
    if requested.strip().lower() == "auto":
        codec = _sniff_encoding(path, gzipped, head)
    else:
        codec = _codec_name(requested)
        bom = _bom_codec(head)
        # A BOM decides: no cp1252 or UTF-8 text starts with one, and decoding it with the
        # configured codec would change every accented letter silently (Excel's "CSV UTF-8"
        # and "Unicode Text" saves carry one). An explicit UTF-16/32 codec reads its own BOM.
        if bom is not None and not codec.startswith(("utf-16", "utf-32")):
            codec = bom
    problem = _decode_problem(path, gzipped, codec)
    if problem:
        raise InputError(
            f"{path}: {problem}; the file is not {codec}: "
            f'set encoding = "auto" (or "cp1252" for Windows exports) in [source]'
        )
    return codec


def _sniff_encoding(path: Path, gzipped: bool, head: bytes) -> str:
    bom = _bom_codec(head)
    if bom is not None:
        return bom
    return "utf-8" if _decode_problem(path, gzipped, "utf-8") is None else "cp1252"


def _bom_codec(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _codec_name(requested: str) -> str:
    try:
        return codecs.lookup(requested).name
    except LookupError:
        raise ConfigError(
            f'unknown encoding {requested!r}; use a Python codec name or "auto"'
        ) from None


def _read_head(path: Path, gzipped: bool) -> bytes:
    try:
        with _open_binary(path, gzipped) as f:
            return f.read(4)
    except _CSV_ERRORS as exc:
        raise InputError(f"{path}: cannot read the file: {exc}") from exc


def _decode_problem(path: Path, gzipped: bool, codec: str) -> str | None:
    """Where the file first fails to decode ("cannot decode byte 0x.. at offset N (line L)")."""
    decoder = codecs.getincrementaldecoder(codec)()
    offset = lines = 0
    try:
        with _open_binary(path, gzipped) as f:
            for chunk in chain(iter(lambda: f.read(_BYTES_CHUNK), b""), [b""]):
                state = decoder.getstate()
                try:
                    lines += decoder.decode(chunk, final=not chunk).count("\n")
                except UnicodeDecodeError as exc:
                    return _describe_decode_error(exc, codec, state, offset, lines)
                offset += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read the file: {exc}") from exc
    return None


def _describe_decode_error(
    exc: UnicodeDecodeError, codec: str, state: tuple[bytes, int], offset: int, lines: int
) -> str:
    pending = state[0]
    at = offset - len(pending) + exc.start
    # Count line breaks before the bad byte with a decoder in the same state (utf-16 byte order).
    counter = codecs.getincrementaldecoder(codec)(errors="replace")
    counter.setstate(state)
    line = lines + counter.decode(exc.object[len(pending) : exc.start]).count("\n") + 1
    bad = exc.object[exc.start : exc.start + 1].hex()
    return f"cannot decode byte 0x{bad} at offset {at} (line {line}) as {codec}"


# --- CSV -----------------------------------------------------------------------------------


def _open_csv(config: SourceConfig, path: Path, suffix: str, gzipped: bool) -> Source:
    codec = _resolve_encoding(path, gzipped, config.encoding)
    delimiter = _resolve_delimiter(config.delimiter, suffix, _first_line(path, gzipped, codec))
    with _open_text(path, gzipped, codec) as text:
        first = _RecordParser(text, delimiter, "header").first_record()
    if isinstance(first, _Broken):
        what = "header line" if config.has_header else "first line"
        raise InputError(f"{path}: unusable {what} ({first.reason}): {first.raw[:200]!r}")
    if first is None:
        raise InputError(f"{path}: no header line: the file holds only blank lines")
    header = first if config.has_header else [f"column_{i}" for i in range(1, len(first) + 1)]
    if not any(name.strip() for name in header):
        raise InputError(f"{path}: the header line has no column names")
    backend = _CsvBackend(path, gzipped, codec, delimiter, header, config)
    return Source(path, header, codec, delimiter, backend)


def _first_line(path: Path, gzipped: bool, codec: str) -> str:
    with _open_text(path, gzipped, codec) as text:
        for line in text:
            if line.strip():
                return line.removeprefix("\ufeff")
    raise InputError(f"{path}: no header line: the file holds only blank lines")


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
    def __init__(
        self,
        path: Path,
        gzipped: bool,
        codec: str,
        delimiter: str,
        header: list[str],
        config: SourceConfig,
    ) -> None:
        self._path, self._gzipped, self._codec = path, gzipped, codec
        self._delimiter, self._width = delimiter, len(header)
        self._has_header, self._batch_size = config.has_header, config.batch_size
        self._withhold_raw = _has_dropped_column(header, config.drop_columns)

    def batches(self, select: list[int], names: list[str]) -> Iterator[Batch]:
        try:
            with _open_text(self._path, self._gzipped, self._codec) as text:
                yield from self._read(text, select, names)
        except _CSV_ERRORS as exc:
            # The bytes were checked at open; this is a file changed or damaged since then.
            raise InputError(f"{self._path}: cannot read the file: {exc}") from exc

    def _read(self, text: IO[str], select: list[int], names: list[str]) -> Iterator[Batch]:
        expected = "header" if self._has_header else "first record"
        parser = _RecordParser(text, self._delimiter, expected)
        if self._has_header:
            parser.first_record()
        number, seen_broken = 0, parser.broken
        while chunk := parser.read(self._batch_size, self._width):
            # The parser's counter spares a scan of the chunk when nothing in it is broken.
            has_broken, seen_broken = parser.broken != seen_broken, parser.broken
            batch = _csv_batch(chunk, number, has_broken, select, names)
            if self._withhold_raw and batch.failures:
                batch = Batch(batch.frame, [_withheld(f) for f in batch.failures])
            yield batch
            number += len(chunk)

    def close(self) -> None:
        pass  # each batches() call opens and closes its own stream


def _has_dropped_column(header: list[str], drop_columns: list[str]) -> bool:
    dropped = {name.strip().casefold() for name in drop_columns}
    return any(name.strip().casefold() in dropped for name in header)


def _withheld(failure: ParseFailure) -> ParseFailure:
    """A broken line without its text: its fields cannot be told apart reliably, so the value
    of a ``drop_columns`` column (a plaintext password) cannot be cut out of it."""
    withheld = "the line's text is withheld: the file has a column in drop_columns"
    return ParseFailure(failure.row, "", f"{failure.reason} ({withheld})")


def _csv_batch(
    chunk: list[_Record], before: int, has_broken: bool, select: list[int], names: list[str]
) -> Batch:
    """Records numbered from ``before + 1``; the common all-good case skips the per-record loop."""
    if not has_broken:
        numbers = range(before + 1, before + len(chunk) + 1)
        return Batch(_frame(numbers, cast(list[list[str]], chunk), select, names), [])
    rows, good, failures = [], [], []
    for number, record in enumerate(chunk, before + 1):
        if isinstance(record, _Broken):
            failures.append(ParseFailure(number, record.raw, record.reason))
        else:
            rows.append(record)
            good.append(number)
    return Batch(_frame(good, rows, select, names), failures)


def _frame(
    numbers: Iterable[int], rows: list[list[str]], select: list[int], names: list[str]
) -> pl.DataFrame:
    columns = [pl.Series(ROW, numbers, dtype=pl.Int64)]
    for index, name in zip(select, names, strict=True):
        # map(itemgetter) runs in C: one pass per selected column, none for the others.
        columns.append(pl.Series(name, list(map(itemgetter(index), rows)), dtype=pl.String))
    return pl.DataFrame(columns)


@dataclass(frozen=True, slots=True)
class _Broken:
    raw: str
    reason: str


_Record = list[str] | _Broken


class _LineFeed:
    """Physical lines of a text stream, kept from the first line of the current record on.

    ``lines`` is the iterator the csv reader consumes; ``done`` is the number of the last line of
    the last finished record (lines are numbered from 1), so earlier chunks can be dropped.
    """

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self._chunks: deque[list[str]] = deque()
        self._first = 1  # number of the first line of self._chunks[0]
        self.done = 0
        self.lines: Iterator[str] = chain.from_iterable(self._read_chunks())

    def _read_chunks(self) -> Iterator[list[str]]:
        while chunk := self._text.readlines(_LINES_HINT):
            if self._first == 1 and not self._chunks and chunk[0].startswith("\ufeff"):
                chunk[0] = chunk[0][1:]  # a BOM the codec kept (e.g. explicit utf-16-le)
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


class _RecordParser:
    """Records from physical lines: field lists, or ``_Broken`` with the line's raw text."""

    def __init__(self, text: IO[str], delimiter: str, expected: str) -> None:
        self._feed = _LineFeed(text)
        self._delimiter = delimiter
        self._expected = expected  # what the field count is compared with, for messages
        self.broken = 0  # broken records produced so far
        self._reader, self._base = self._new_reader([])

    def _new_reader(self, replay: list[str]) -> tuple[Any, int]:
        # The reader's line_num 1 is the line after the last finished record.
        lines = chain(replay, self._feed.lines)
        return csv.reader(lines, delimiter=self._delimiter, strict=True), self._feed.done

    def first_record(self) -> _Record | None:
        """The first non-blank record, with any field count (the header)."""
        return next(iter(self.read(1, None)), None)

    def read(self, limit: int, width: int | None) -> list[_Record]:
        """The next ``limit`` non-blank records (fewer at EOF); ``width``: expected field count."""
        out: list[_Record] = []
        going = True
        with _gc_paused():
            while going and len(out) < limit:
                try:
                    going = self._fill(out, limit, width)
                except csv.Error as exc:
                    spanning = self._base + self._reader.line_num > self._feed.done + 1
                    out.append(self._restart(_quote_reason(str(exc), spanning)))
        return out

    def _fill(self, out: list[_Record], limit: int, width: int | None) -> bool:
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

    def _settle(self, row: list[str], end: int, width: int | None) -> _Record | None:
        """A record that is good as read, blank (None), or one line with a wrong field count."""
        start = self._feed.done + 1
        if start == end and len(row) <= 1 and not self._feed.line(start).strip():
            return None
        if width is None or len(row) == width:
            return row
        return self._broken(start, f"line has {len(row)} fields, the {self._expected} has {width}")

    def _restart(self, reason: str) -> _Broken:
        """The current record's first line is broken; parse again from its second line."""
        start = self._feed.done + 1
        end = self._base + self._reader.line_num
        replay = [self._feed.line(n) for n in range(start + 1, end + 1)]
        broken = self._broken(start, reason)
        self._feed.done = start
        self._reader, self._base = self._new_reader(replay)
        return broken

    def _broken(self, number: int, reason: str) -> _Broken:
        self.broken += 1
        return _Broken(_without_line_break(self._feed.line(number)), reason)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector while a batch of row lists is built.

    Each retained row list counts as a new container, so the collector would run every few
    hundred rows and rescan the growing batch: about a fifth of the read time. Lists of strings
    cannot form cycles, and nothing but the csv parser runs meanwhile.
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


# --- Parquet -------------------------------------------------------------------------------


def _open_parquet(config: SourceConfig, path: Path) -> Source:
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from exc
    header = list(file.schema_arrow.names)
    if not any(name.strip() for name in header):
        file.close()
        raise InputError(f"{path}: the Parquet file has no named columns (no header)")
    backend = _ParquetBackend(path, file, header, config.batch_size)
    return Source(path, header, "parquet", None, backend)


class _ParquetBackend:
    # pyarrow yields at most batch_size rows per batch, fewer at row-group ends.
    def __init__(self, path: Path, file: Any, header: list[str], batch_size: int) -> None:
        self._file_path, self._file, self._header = path, file, header
        self._batch_size = batch_size

    def batches(self, select: list[int], names: list[str]) -> Iterator[Batch]:
        # Read only the selected columns, unless repeated names make names ambiguous.
        unique = len(set(self._header)) == len(self._header)
        wanted = [self._header[i] for i in select] if unique else None
        positions = list(range(len(select))) if unique else select
        before = 0
        try:
            for part in self._file.iter_batches(batch_size=self._batch_size, columns=wanted):
                numbers = range(before + 1, before + part.num_rows + 1)
                columns = [pl.Series(ROW, numbers, dtype=pl.Int64)]
                for position, name in zip(positions, names, strict=True):
                    text = _arrow_text(part.column(position))
                    columns.append(pl.Series(name, text, dtype=pl.String))
                yield Batch(pl.DataFrame(columns), [])
                before += part.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self._file_path}: cannot read the Parquet file: {exc}") from exc

    def close(self) -> None:
        self._file.close()


def _arrow_text(array: Any) -> Any:
    """One Arrow column as text, nulls as ""."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _arrow_text(array.dictionary_decode())
    if pa.types.is_floating(kind):
        return pa.array(_float_texts(array), pa.string())
    if pa.types.is_timestamp(kind):
        return pc.fill_null(_timestamp_texts(array), "")
    try:
        return pc.fill_null(pc.cast(array, pa.string()), "")
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([_py_text(v) for v in array.to_pylist()], pa.string())


def _float_texts(array: Any) -> list[str]:
    # Arrow's text is the shortest form for the column's width (float32 0.1 stays "0.1"), but it
    # writes 7022550000000.0 as "7.02255e+12": integral values (ids written by pandas next to
    # NaNs) are spelled out in full from that shortest form, so "123", never "123.0" or "1e+20".
    texts = pc.cast(array, pa.string()).to_pylist()
    out = []
    for value, text in zip(array.to_pylist(), texts, strict=True):
        if value is None or value != value:  # null or NaN
            out.append("")
        elif value.is_integer():
            out.append(str(int(Decimal(text))))
        else:
            out.append(text)
    return out


def _timestamp_texts(array: Any) -> Any:
    if array.type.tz is not None:
        array = array.cast(pa.timestamp(array.type.unit, "UTC"))  # Arrow then writes a "Z"
    text = pc.replace_substring(pc.cast(array, pa.string()), " ", "T", max_replacements=1)
    return pc.replace_substring_regex(text, r"\.0+(Z?)$", r"\1")


def _py_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)
