"""A job's mapping, resolved against the opened export: its columns (``mapping.plan_mapping``),
the types of a Parquet file's columns, and what its header line suggests.

- A struct, list, map or binary column cannot fill a text field: a configuration error
  naming the column and its type, before anything is read.
- An externalId from a float column is accepted only as an exact integer (below 2**53 for a
  double): ``FieldPlan.float_limits`` tells the mapping where the float could have rounded.
- A header line that holds an email address or a phone number is most likely the first
  record of a file without a header: a warning (log and summary.json), naming the line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Final

import polars as pl

from customer_import.config import JobConfig
from customer_import.contracts import EXTERNAL_ID
from customer_import.errors import ConfigError
from customer_import.logs import mask
from customer_import.schema import STRING_FIELDS
from customer_import.source import Source
from customer_import.transform.mapping import FieldPlan, MappingPlan, plan_mapping

log = logging.getLogger("customer_import")

#: Integers a float of each width holds exactly (the mantissa's reach).
_EXACT_BELOW: Final = ((pl.Float16, 2.0**11), (pl.Float32, 2.0**24), (pl.Float64, 2.0**53))
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE: Final = re.compile(r"^\+?[\d\s().-]+$")
_PHONE_DIGITS: Final = 7
_SHOWN: Final = 200  # characters of a header line quoted in a warning


def plan_job(job: JobConfig, source: Source) -> MappingPlan:
    """The job's mapping resolved against ``source``; ConfigError names what cannot work."""
    plan = plan_mapping(
        job.mapping,
        source.header,
        source.columns,
        job.source.null_values,
        max_id_length=job.max_id_length,
    )
    fields = tuple(_typed(f, source.column_types) for f in plan.fields)
    warnings = header_warnings(source.header) if _has_header_line(job, source) else []
    for warning in warnings:
        log.warning("%s", warning)
    return replace(plan, fields=fields, warnings=tuple(warnings))


def _has_header_line(job: JobConfig, source: Source) -> bool:
    return job.source.has_header and source.delimiter is not None  # a CSV read with a header


def _typed(field: FieldPlan, types: Mapping[str, pl.DataType]) -> FieldPlan:
    for column in field.columns:
        dtype = types.get(column)
        if dtype is not None and field.target in STRING_FIELDS and _not_text(dtype):
            raise ConfigError(
                f"[mapping] {field.target} reads column {column!r}, a {dtype} column of the "
                "Parquet file: a text field cannot take it (its values would arrive as JSON or "
                "raw bytes). Map another column, or export this one as text"
            )
    if field.target != EXTERNAL_ID:
        return field
    limits = tuple(_exact_below(types.get(column)) for column in field.columns)
    return replace(field, float_limits=limits) if any(limits) else field


def _not_text(dtype: pl.DataType) -> bool:
    return dtype.is_nested() or dtype == pl.Binary


def _exact_below(dtype: pl.DataType | None) -> float | None:
    return next((limit for kind, limit in _EXACT_BELOW if dtype == kind), None)


def header_warnings(header: list[str]) -> list[str]:
    """A warning when a header cell is an email address or a phone number."""
    for position, name in enumerate(header, 1):
        kind = _looks_like(name.strip())
        if kind is not None:
            line = mask(",".join(header))[:_SHOWN]
            return [
                f"the header line {line!r} holds {kind} in column {position}: it looks like a "
                "record, not column names. If the file has no header line, set has_header = "
                "false in [source] and map the columns by position; as it is, that first "
                "record is not imported"
            ]
    return []


def _looks_like(cell: str) -> str | None:
    if _EMAIL.match(cell):
        return "an email address"
    if _PHONE.match(cell) and sum(c.isdigit() for c in cell) >= _PHONE_DIGITS:
        return "a phone number"
    return None
