"""Parquet files: read with Polars (types intact) in bounded windows, every column turned into text.

Integers and integral floats as ``123`` (never ``123.0`` or ``1e+20``), other floats in their
shortest round-trip form for the column's width (float32 ``0.1`` stays ``0.1``), NaN and null as
``""``, booleans ``true``/``false``, dates ``2024-03-20``, timestamps ISO 8601
(``2024-03-20T10:00:00``; tz-aware ones converted to UTC with a ``Z`` suffix; an all-zero fraction
is dropped), dictionary (categorical) columns as their values, binary as UTF-8 (bytes that are
not UTF-8 as ``\\xff``), lists, structs and maps as JSON text: all as pyarrow's reader wrote them.
Where Polars does not keep the Arrow type, the text follows what Polars reads: times of day
``10:00:00`` (a fraction only when there is one; pyarrow wrote the unit's digits,
``10:00:00.000``), durations as a count of Polars' unit (milliseconds for Arrow's seconds), an
Arrow ``date64`` as a timestamp (``2024-03-20T00:00:00``). The types themselves stay known
(``Source.column_types``): the mapping refuses a nested or binary column for a text field, and
takes an id from a float column only as an exact integer (``transform/planning.py``).

The file is read a window of whole batches at a time (``_READ_CELLS`` values at most, at least one
batch), so memory does not grow with the file nor with the machine. Polars' own streaming reader
(``collect_batches``) reads row groups ahead by the number of threads: for an 8-column export of
8 million rows it held 0.9 GB on 2 threads and 1.5 GB on 16, against 0.3 and 0.5 GB here.

A file that repeats a column name cannot be read by Polars at all; pyarrow (the ``cloud`` extra)
reads it when installed, and its columns are then turned into text the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import polars as pl

from customer_import.config import SourceConfig
from customer_import.contracts import ROW, Batch
from customer_import.errors import ConfigError, InputError
from customer_import.source.table import Source, unique_names

#: Values (rows x selected columns) read from the file at once, rounded to whole batches.
_READ_CELLS: Final = 2_000_000
#: Integral floats below these are exact integers: Polars' text is the integer and ".0".
_EXACT_32: Final = 2.0**24
_EXACT_64: Final = 2.0**53
#: Non-integral floats in this range are written the same by Polars and by Arrow's formatter
#: (plain decimals); outside it Arrow writes ``1.5e-7`` / ``1.234567890123456e+14`` (below).
_PLAIN: Final = (1e-4, 1e9)
#: A timestamp's fraction of a second has the digits of its unit.
_DIGITS: Final = {"ms": 3, "us": 6, "ns": 9}
#: A damaged file can also hold values Polars panics on (a date past year 262143).
_READ_ERRORS: Final = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError)


def open_parquet(config: SourceConfig, path: Path, name: str) -> Source:
    """Read the schema of the file at ``path``; ``name`` (a path or URL) is used in messages."""
    scan = pl.scan_parquet(path, glob=False, hive_partitioning=False)
    try:
        schema = scan.collect_schema()
        header = list(schema.names())
        rows = int(scan.select(pl.len()).collect().item())
    except pl.exceptions.DuplicateError as exc:  # Polars cannot read such a file at all
        return _open_with_pyarrow(config, path, name, exc)
    except _READ_ERRORS as exc:
        raise InputError(f"{name}: not a readable Parquet file: {_first_line(exc)}") from exc
    _check_header(header, name)
    backend = _ParquetBackend(name, scan, rows, config.batch_size)
    types = _column_types(header, list(schema.dtypes()))
    return Source(path, header, "parquet", None, backend, name=name, column_types=types)


def _column_types(header: list[str], dtypes: list[pl.DataType]) -> dict[str, pl.DataType]:
    """Each column's type by the unique name ``Source`` gives it."""
    return dict(zip(unique_names(header), dtypes, strict=True))


def _check_header(header: list[str], name: str) -> None:
    if not any(column.strip() for column in header):
        raise InputError(f"{name}: the Parquet file has no named columns (no header)")


class _ParquetBackend:
    """Windows of whole batches read by Polars; the batches cut from them are zero-copy."""

    def __init__(self, name: str, scan: pl.LazyFrame, rows: int, batch_size: int) -> None:
        self._name, self._scan, self._rows = name, scan, rows
        self._batch_size = batch_size

    def batches(self, select: list[int], names: list[str], first: int | None) -> Iterator[Batch]:
        query = self._scan.select(pl.nth(i).alias(n) for i, n in zip(select, names, strict=True))
        size = self._batch_size
        window = size * max(1, _READ_CELLS // (size * max(1, len(select))))

        def windows() -> Iterator[pl.DataFrame]:
            for start in range(0, self._rows, window):
                rows = min(window, self._rows - start)
                if not select:  # no column to read: the record numbers alone
                    yield pl.DataFrame(height=rows)
                    continue
                part = query.slice(start, window).collect()
                if part.height != rows:
                    raise InputError(
                        f"{self._name}: cannot read the Parquet file: {part.height:,} records "
                        f"from record {start + 1:,} where its metadata counts {rows:,}"
                    )
                yield part

        yield from _text_batches(windows(), size, first, self._name)

    def close(self) -> None:
        """Nothing stays open: each window is one query, which opens and closes the file."""


def _text_batches(
    windows: Iterator[pl.DataFrame], batch_size: int, first: int | None, name: str
) -> Iterator[Batch]:
    """Batches of at most ``batch_size`` rows cut from the windows (the first one cut after
    ``first`` rows), numbered from 1, every column as text."""
    before = 0
    try:
        for window in windows:
            for start in range(0, window.height, batch_size):
                part = window.slice(start, batch_size)
                if first and part.height > first:
                    yield Batch(_as_text(part.slice(0, first), before), [])
                    before, part = before + first, part.slice(first)
                first = None
                yield Batch(_as_text(part, before), [])
                before += part.height
    except _READ_ERRORS as exc:
        raise InputError(f"{name}: cannot read the Parquet file: {_first_line(exc)}") from exc


def _as_text(part: pl.DataFrame, before: int) -> pl.DataFrame:
    """The record numbers after ``before`` and every column of ``part`` as text, nulls as ""."""
    extensions = [
        pl.col(c).ext.storage() for c, dtype in part.schema.items() if dtype.is_extension()
    ]
    part = part.with_columns(extensions) if extensions else part  # arrow.json: its text
    exprs = [pl.int_range(before + 1, before + part.height + 1, dtype=pl.Int64).alias(ROW)]
    in_python: dict[str, Callable[[pl.Series], pl.Series]] = {}
    for column, dtype in part.schema.items():
        expr = _text_expr(pl.col(column), dtype)
        if isinstance(expr, pl.Expr):  # a float's nulls are left to _float_fixes
            exprs.append((expr if dtype.is_float() else expr.fill_null("")).alias(column))
        else:  # a placeholder, replaced below
            exprs.append(pl.lit("").alias(column))
            in_python[column] = expr
    frame = part.select(exprs)
    fixes = [to_text(part[column]).fill_null("") for column, to_text in in_python.items()]
    fixes += _float_fixes(part, frame)
    return frame.with_columns(fixes) if fixes else frame


def _text_expr(col: pl.Expr, dtype: pl.DataType) -> pl.Expr | Callable[[pl.Series], pl.Series]:
    """The expression that turns a column of ``dtype`` into text, or the Python function that
    does where no expression can (binary that may not be UTF-8, nested values as JSON)."""
    if dtype == pl.String:
        return col
    if dtype == pl.Float16:  # Arrow wrote a half float's exact value, as a double
        return _float_expr(col.cast(pl.Float64), _EXACT_64)
    if dtype in (pl.Float32, pl.Float64):
        return _float_expr(col, _EXACT_32 if dtype == pl.Float32 else _EXACT_64)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            col = col.dt.convert_time_zone("UTC")
        digits = _DIGITS[dtype.time_unit or "us"]
        text = col.dt.to_string(f"%Y-%m-%dT%H:%M:%S%.{digits}f")
        text = text.str.strip_suffix("." + "0" * digits).str.strip_prefix("+")  # "+10000-01-01"
        return text + "Z" if dtype.time_zone is not None else text
    if dtype == pl.Date:
        return col.cast(pl.String).str.strip_prefix("+")
    if dtype == pl.Time:
        return col.dt.to_string("%H:%M:%S%.f")
    if isinstance(dtype, pl.Duration):
        return col.cast(pl.Int64).cast(pl.String)
    if dtype == pl.Binary:
        return _binary_text
    if dtype.is_nested() or dtype == pl.Object:
        return _json_texts
    return col.cast(pl.String)  # integers, decimals, booleans, categoricals, null


def _float_expr(col: pl.Expr, exact: float) -> pl.Expr:
    """Polars' shortest text where it is also Arrow's; null where ``_arrow_float`` must decide
    (large integral values, tiny or large fractional ones: rare in exports)."""
    text = col.cast(pl.String)
    whole = col == col.floor()
    return (
        pl.when(col.is_null() | col.is_nan())
        .then(pl.lit(""))
        .when(col == 0)
        .then(pl.lit("0"))  # -0.0 too
        .when(col.is_infinite())
        .then(text)  # "inf", "-inf"
        .when(whole & (col.abs() < exact))
        .then(text.str.strip_suffix(".0"))
        .when(~whole & (col.abs() >= _PLAIN[0]) & (col.abs() < _PLAIN[1]))
        .then(text)
        .otherwise(None)
    )


def _float_fixes(part: pl.DataFrame, frame: pl.DataFrame) -> list[pl.Series]:
    """The float columns whose expression left some values to ``_arrow_float``."""
    fixes = []
    for column, dtype in part.schema.items():
        if not dtype.is_float() or not frame[column].is_null().any():
            continue
        texts = frame[column]
        values = part[column].cast(pl.Float64 if dtype == pl.Float16 else dtype)
        shortest = values.cast(pl.String)
        mask = texts.is_null()
        fixed = [_arrow_float(t) for t in shortest.filter(mask).to_list()]
        fixes.append(texts.scatter(mask.arg_true(), fixed))
    return fixes


def _arrow_float(text: str) -> str:
    """Polars' shortest text of a finite float written as Arrow wrote it: an integral value in
    full (``100000000000000000000``), others plain from 1e-6 to 1e10, else ``1.5e-7``."""
    number = Decimal(text)
    if number == number.to_integral_value():
        return str(int(number))
    number = number.normalize()
    sign, digits, exponent = number.as_tuple()
    magnitude = len(digits) - 1 + int(exponent)
    if -6 <= magnitude < 10:
        return format(number, "f")
    mantissa = "".join(map(str, digits))
    mantissa = f"{mantissa[0]}.{mantissa[1:]}" if len(mantissa) > 1 else mantissa
    return f"{'-' if sign else ''}{mantissa}e{'+' if magnitude >= 0 else '-'}{abs(magnitude)}"


def _binary_text(series: pl.Series) -> pl.Series:
    try:
        return series.cast(pl.String)
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError):
        return pl.Series(series.name, [_py_text(v) for v in series.to_list()], pl.String)


def _json_texts(series: pl.Series) -> pl.Series:
    dtype = series.dtype
    values = series.to_list()
    if _has_map(dtype):  # Arrow gave a map's entries as [key, value] pairs
        values = [_map_pairs(v, dtype) for v in values]
    return pl.Series(series.name, [_py_text(v) for v in values], pl.String)


def _has_map(dtype: Any) -> bool:
    if isinstance(dtype, pl.Map):
        return True
    if isinstance(dtype, pl.List | pl.Array):
        return _has_map(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_has_map(field.dtype) for field in dtype.fields)
    return False


def _map_pairs(value: Any, dtype: Any) -> Any:
    if value is None:
        return None
    if isinstance(dtype, pl.Map):
        return [[_map_pairs(k, dtype.key), _map_pairs(v, dtype.value)] for k, v in value.items()]
    if isinstance(dtype, pl.List | pl.Array):
        return [_map_pairs(v, dtype.inner) for v in value]
    if isinstance(dtype, pl.Struct):
        return {field.name: _map_pairs(value[field.name], field.dtype) for field in dtype.fields}
    return value


def _py_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _first_line(exc: BaseException) -> str:
    """Polars' message without the query it appends after a blank line."""
    return str(exc).strip().split("\n\n", 1)[0]


# --- files that repeat a column name: read by pyarrow, when installed ------------------------


def _open_with_pyarrow(config: SourceConfig, path: Path, name: str, exc: Exception) -> Source:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            f"{name}: the Parquet file repeats a column name ({_first_line(exc)}), which Polars "
            "cannot read; pyarrow reads it: pip install 'customer-import[cloud]' (or write the "
            "file with unique column names)"
        ) from exc
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{name}: not a readable Parquet file: {error}") from error
    header = list(file.schema_arrow.names)
    try:
        _check_header(header, name)
    except InputError:
        file.close()
        raise
    backend = _ArrowBackend(name, file, config.batch_size)
    empty = file.schema_arrow.empty_table().rename_columns(unique_names(header))
    types = _column_types(header, list(pl.DataFrame(empty).schema.dtypes()))
    return Source(path, header, "parquet", None, backend, name=name, column_types=types)


class _ArrowBackend:
    """pyarrow's record batches (at most batch_size rows, fewer at row-group ends), columns
    picked by position, then turned into text as Polars' windows are."""

    def __init__(self, name: str, file: Any, batch_size: int) -> None:
        self._name, self._file, self._batch_size = name, file, batch_size

    def batches(self, select: list[int], names: list[str], first: int | None) -> Iterator[Batch]:
        import pyarrow as pa

        def windows() -> Iterator[pl.DataFrame]:
            try:
                for part in self._file.iter_batches(batch_size=self._batch_size):
                    table = pa.Table.from_batches([part]).select(select).rename_columns(names)
                    yield pl.DataFrame(table) if select else pl.DataFrame(height=part.num_rows)
            except (pa.ArrowException, OSError) as exc:
                raise InputError(f"{self._name}: cannot read the Parquet file: {exc}") from exc

        yield from _text_batches(windows(), self._batch_size, first, self._name)

    def close(self) -> None:
        self._file.close()
