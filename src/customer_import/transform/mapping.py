"""Pure: source columns -> target fields, as Polars expressions.

A mapping is resolved once against the file's columns (``plan_mapping``), so every
configuration mistake (a column the file lacks, an ambiguous repeated header) is found
before anything is sent. Applying the plan to a batch (``map_batch``) only selects,
cleans and renames: every target column is text (or null) and parsing is left to
``validation``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import polars as pl

from customer_import.config import FieldMapping, MappingConfig
from customer_import.contracts import EXTERNAL_ID, ROW
from customer_import.errors import ConfigError
from customer_import.transform.normalise import EXCEL_NUMBER

# Excel keeps a leading apostrophe that was typed to stop it reading a value as a number.
_EXCEL_TEXT_PREFIX_FIELDS = frozenset({"externalId", "phoneNumber"})


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """One target field, resolved: which source column (or constant) and how to read it."""

    target: str
    column: str | None
    spec: FieldMapping


@dataclass(frozen=True, slots=True)
class MappingPlan:
    fields: tuple[FieldPlan, ...]
    null_values: tuple[str, ...]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(f.target for f in self.fields)

    @property
    def source_columns(self) -> tuple[str, ...]:
        """The source columns the mapping reads, each once."""
        return tuple(dict.fromkeys(f.column for f in self.fields if f.column is not None))

    def field(self, target: str) -> FieldPlan | None:
        return next((f for f in self.fields if f.target == target), None)


def plan_mapping(
    mapping: MappingConfig, header: list[str], columns: list[str], null_values: list[str]
) -> MappingPlan:
    """Resolve every mapped column against the file; ConfigError names what is wrong."""
    fields = tuple(
        FieldPlan(target, _resolve_column(spec, header, columns), spec)
        for target, spec in mapping.fields.items()
    )
    return MappingPlan(fields=fields, null_values=tuple(null_values))


def _resolve_column(spec: FieldMapping, header: list[str], columns: list[str]) -> str | None:
    if spec.column is None:
        return None
    if isinstance(spec.column, int):
        return _by_position(spec.column, columns)
    return _by_name(spec.column, header, columns)


def _by_position(position: int, columns: list[str]) -> str:
    if not 1 <= position <= len(columns):
        raise ConfigError(
            f"mapping names column {position}, but the file has {len(columns)} columns"
        )
    return columns[position - 1]


def _by_name(name: str, header: list[str], columns: list[str]) -> str:
    repeats = Counter(header)[name]
    if repeats > 1:
        # Never pick one of several same-named columns silently: make the job file say which.
        alternatives = ", ".join(repr(c) for c in _same_named(name, header, columns))
        raise ConfigError(
            f"column {name!r} appears {repeats} times in the header; "
            f"map one of {alternatives} (the first keeps the plain name only as {name + '_1'!r})"
        )
    if name in columns:
        return name
    first_of_repeated = _first_of_repeated(name, header)
    if first_of_repeated is not None:
        return first_of_repeated
    raise ConfigError(
        f"mapping names column {name!r}, which the file does not have; "
        f"its columns are: {', '.join(repr(c) for c in columns)}"
    )


def _same_named(name: str, header: list[str], columns: list[str]) -> list[str]:
    positions = [i for i, h in enumerate(header) if h == name]
    return [f"{name}_1"] + [columns[i] for i in positions[1:]]


def _first_of_repeated(name: str, header: list[str]) -> str | None:
    """'Phone Number_1' names the first of several 'Phone Number' columns."""
    base, sep, index = name.rpartition("_")
    if sep and index == "1" and Counter(header)[base] > 1:
        return base
    return None


def map_batch(
    frame: pl.DataFrame, plan: MappingPlan, only: tuple[str, ...] | None = None
) -> pl.DataFrame:
    """`_row` plus one text column per target field (or those in ``only``), trimmed,
    with null tokens as null."""
    fields = [f for f in plan.fields if only is None or f.target in only]
    return frame.select(pl.col(ROW), *(_field_expr(f, plan.null_values) for f in fields))


def clean_text(column: str, null_values: tuple[str, ...]) -> pl.Expr:
    """Trimmed text; empty and null-like cells become null."""
    trimmed = pl.col(column).str.strip_chars()
    return pl.when(trimmed.is_in(list(null_values)) | (trimmed == "")).then(None).otherwise(trimmed)


def _field_expr(field: FieldPlan, null_values: tuple[str, ...]) -> pl.Expr:
    spec = field.spec
    if field.column is None:
        return pl.lit(_constant_text(spec.value), dtype=pl.String).alias(field.target)
    expr = clean_text(field.column, null_values)
    if field.target in _EXCEL_TEXT_PREFIX_FIELDS:
        expr = _strip_excel_prefix(expr)
    if spec.part is not None:
        expr = _name_part(expr, spec.part)
    return expr.alias(field.target)


def _constant_text(value: str | bool | None) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _strip_excel_prefix(expr: pl.Expr) -> pl.Expr:
    stripped = expr.str.strip_prefix("'").str.strip_chars()
    return pl.when(stripped == "").then(None).otherwise(stripped)


def _name_part(expr: pl.Expr, part: str) -> pl.Expr:
    """Split a full name on its last run of whitespace: 'Mary Ann Smith' -> 'Mary Ann' / 'Smith'."""
    normalised = expr.str.replace_all(r"\s+", " ")
    has_space = normalised.str.contains(" ", literal=True)
    if part == "first":
        return pl.when(has_space).then(normalised.str.replace(r" [^ ]*$", "")).otherwise(normalised)
    return pl.when(has_space).then(normalised.str.extract(r" ([^ ]*)$", 1)).otherwise(None)


def id_only(frame: pl.DataFrame, plan: MappingPlan) -> pl.Series:
    """The cleaned externalId of each record, null where it cannot be a real id."""
    ids = map_batch(frame, plan, only=(EXTERNAL_ID,))[EXTERNAL_ID]
    return ids.set(ids.str.contains(EXCEL_NUMBER.pattern).fill_null(False), None)
