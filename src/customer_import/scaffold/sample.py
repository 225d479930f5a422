"""Open an export as a run with ``encoding = "auto"`` and ``delimiter = "auto"`` would, tell a
header from a first record, and keep the values of the first records for the choices to come.

The reading is the job's own (``source.open_source``): whatever it detects here is what a run
of the written job file detects.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from customer_import.config import DEFAULT_NULL_VALUES, SourceConfig
from customer_import.scaffold import names
from customer_import.source import Source, open_source

#: Records whose values the choices are made from: enough to see every value of a status
#: column, few enough to take a moment on any export.
SAMPLE_RECORDS: Final = 5_000
#: The default null-like tokens, in any case, and the empty cell.
_NULLS: Final = frozenset({"", *(v.lower() for v in DEFAULT_NULL_VALUES)})
#: Header cells that are data: an email address, or a number of three digits or more.
_DATA_CELL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.\w+$|^[+(]?\d[\d\s().\-/]{2,}$")


@dataclass(frozen=True, slots=True)
class Column:
    """One source column and what its first records hold."""

    name: str
    """The header's name ("column_3" in a file without a header)."""
    ref: str | int
    """How a mapping names it: the name, "Phone Number_1" for the first of repeated names,
    or the 1-based position in a file without a header."""
    values: tuple[str, ...]
    """The sampled records' values, trimmed, empty and null-like ones left out."""

    @property
    def shown(self) -> str:
        return f"column {self.ref}" if isinstance(self.ref, int) else f'"{self.ref}"'


@dataclass(frozen=True, slots=True)
class Sample:
    export: str
    """The export as the user named it."""
    encoding: str
    """The codec "auto" found ("parquet" for Parquet)."""
    delimiter: str | None
    """The delimiter "auto" found; None for Parquet."""
    has_header: bool
    columns: tuple[Column, ...]
    records: int
    """Records sampled (their number, not the file's)."""
    repeated: dict[str, int]
    """Header names that appear more than once, and how often."""


def take_sample(export: Path | str) -> Sample:
    """Read the header and the first ``SAMPLE_RECORDS`` records; InputError/ConfigError as a
    run would raise them for this export."""
    sample = _read(export, has_header=True)
    if sample.delimiter is not None and _is_first_record(sample):
        return _read(export, has_header=False)
    return sample


def _is_first_record(sample: Sample) -> bool:
    """No name is a known column name and some are values: the file has no header row."""
    headers = [c.name for c in sample.columns]
    if any(names.is_known(name) for name in headers):
        return False
    return any(_DATA_CELL.match(name.strip()) for name in headers)


def _read(export: Path | str, *, has_header: bool) -> Sample:
    config = SourceConfig(
        encoding="auto", delimiter="auto", has_header=has_header, batch_size=SAMPLE_RECORDS
    )
    with open_source(config, export) as source:
        frame = _first_batch(source)
        columns = _columns(source, frame, has_header)
        repeated = {n: k for n, k in Counter(source.header).items() if k > 1 and has_header}
        return Sample(
            export=str(export),
            encoding=source.encoding,
            delimiter=source.delimiter,
            has_header=has_header,
            columns=columns,
            records=frame.height,
            repeated=repeated,
        )


def _first_batch(source: Source) -> pl.DataFrame:
    reader = source.batches()
    batch = next(reader, None)
    frame = batch.frame if batch is not None else pl.DataFrame()
    return frame.select(pl.col(c) for c in source.columns if c in frame.columns)


def _columns(source: Source, frame: pl.DataFrame, has_header: bool) -> tuple[Column, ...]:
    seen: Counter[str] = Counter()
    columns = []
    for position, (name, unique) in enumerate(zip(source.header, source.columns, strict=True), 1):
        seen[name] += 1
        ref: str | int = position if not has_header else _ref(name, unique, seen, source.header)
        values = frame[unique].to_list() if unique in frame.columns else []
        shown = name if has_header and name.strip() else unique
        columns.append(Column(shown, ref, _kept(values)))
    return tuple(columns)


def _ref(name: str, unique: str, seen: Counter[str], header: list[str]) -> str:
    """The mapping's name for a column: the first of repeated names is "Name_1"."""
    if header.count(name) > 1 and seen[name] == 1:
        return f"{name}_1"
    return unique


def _kept(values: list[str | None]) -> tuple[str, ...]:
    stripped = (v.strip() for v in values if v is not None)
    return tuple(v for v in stripped if v.lower() not in _NULLS)
