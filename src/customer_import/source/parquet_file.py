"""Parquet files: read in batches with pyarrow (types intact), every column turned into text.

Integers and integral floats as ``123``, other floats in their shortest form, NaN and null as
``""``, booleans ``true``/``false``, dates ``2024-03-20``, timestamps ISO 8601
(``2024-03-20T10:00:00``; tz-aware ones converted to UTC with a ``Z`` suffix; an all-zero fraction
is dropped).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from customer_import.config import SourceConfig
from customer_import.contracts import ROW, Batch
from customer_import.errors import InputError
from customer_import.source.table import Source


def open_parquet(config: SourceConfig, path: Path, name: str) -> Source:
    """Read the schema of the file at ``path``; ``name`` (a path or URL) is used in messages."""
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{name}: not a readable Parquet file: {exc}") from exc
    header = list(file.schema_arrow.names)
    if not any(column.strip() for column in header):
        file.close()
        raise InputError(f"{name}: the Parquet file has no named columns (no header)")
    backend = _ParquetBackend(name, file, header, config.batch_size)
    return Source(path, header, "parquet", None, backend, name=name)


class _ParquetBackend:
    # pyarrow yields at most batch_size rows per batch, fewer at row-group ends.
    def __init__(self, name: str, file: Any, header: list[str], batch_size: int) -> None:
        self._name, self._file, self._header = name, file, header
        self._batch_size = batch_size

    def batches(self, select: list[int], names: list[str], first: int | None) -> Iterator[Batch]:
        # Read only the selected columns, unless repeated names make names ambiguous.
        unique = len(set(self._header)) == len(self._header)
        wanted = [self._header[i] for i in select] if unique else None
        positions = list(range(len(select))) if unique else select
        before = 0
        try:
            parts = self._file.iter_batches(batch_size=self._batch_size, columns=wanted)
            for part in _first_cut(parts, first):
                numbers = range(before + 1, before + part.num_rows + 1)
                columns = [pl.Series(ROW, numbers, dtype=pl.Int64)]
                for position, name in zip(positions, names, strict=True):
                    text = _arrow_text(part.column(position))
                    columns.append(pl.Series(name, text, dtype=pl.String))
                yield Batch(pl.DataFrame(columns), [])
                before += part.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self._name}: cannot read the Parquet file: {exc}") from exc

    def close(self) -> None:
        self._file.close()


def _first_cut(parts: Iterator[Any], first: int | None) -> Iterator[Any]:
    """pyarrow's record batches, the first one cut after ``first`` rows."""
    for part in parts:
        if first and part.num_rows > first:
            yield part.slice(0, first)
            part = part.slice(first)
        first = None
        yield part


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
