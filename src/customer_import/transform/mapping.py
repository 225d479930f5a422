"""Pure: source columns -> target fields, as Polars expressions.

A mapping is resolved once against the file's columns (``plan_mapping``; ``planning.plan_job``
adds what the file's types and header say), so every configuration mistake (a column the file
lacks, an ambiguous repeated header) is found before anything is sent. Applying the plan to a
batch (``map_batch``) only selects, cleans and renames: every target column is text (or null)
and parsing is left to ``validation``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

import polars as pl

from customer_import.config import (
    DEFAULT_MAX_ID_LENGTH,
    DEFAULT_NULL_VALUES,
    FieldMapping,
    MappingConfig,
)
from customer_import.contracts import EXTERNAL_ID, ROW
from customer_import.errors import ConfigError
from customer_import.schema import NAME_FIELDS
from customer_import.transform.ids import id_reasons

# Excel keeps a leading apostrophe that was typed to stop it reading a value as a number.
_EXCEL_TEXT_PREFIX_FIELDS = frozenset({"externalId", "phoneNumber"})
#: Sent and compared in Unicode NFC: "e" + a combining accent and "é" are one spelling. (An
#: email is too: email-validator returns it in NFC, and the fast path takes ASCII only.)
_NFC_FIELDS = frozenset(NAME_FIELDS)
#: Beside ``EXTERNAL_ID`` when the id comes from a float column: true where the float is not an
#: exact integer (the id was rounded), so validation rejects it.
INEXACT_ID = f"{EXTERNAL_ID}__inexact"


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """One target field, resolved: which source columns (or constant) and how to read them."""

    target: str
    columns: tuple[str, ...]
    """The source columns tried in order; empty for a constant."""
    spec: FieldMapping
    float_limits: tuple[float | None, ...] = ()
    """Per column, when it is a float column feeding externalId: the magnitude below which its
    integers are exact (2**53 for a double)."""

    @property
    def column(self) -> str | None:
        """The first (or only) source column; None for a constant."""
        return self.columns[0] if self.columns else None


@dataclass(frozen=True, slots=True)
class MappingPlan:
    fields: tuple[FieldPlan, ...]
    null_values: tuple[str, ...]
    """Cells equal to one of these (after trimming) are empty; compared exactly (the defaults
    are given in every spelling of upper and lower case)."""
    max_id_length: int = DEFAULT_MAX_ID_LENGTH
    warnings: tuple[str, ...] = ()
    """What the file's header suggests about the mapping (a header line that looks like a
    record), for the log and summary.json."""

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(f.target for f in self.fields)

    @property
    def source_columns(self) -> tuple[str, ...]:
        """The source columns the mapping reads, each once."""
        return tuple(dict.fromkeys(c for f in self.fields for c in f.columns))

    def field(self, target: str) -> FieldPlan | None:
        return next((f for f in self.fields if f.target == target), None)


def plan_mapping(
    mapping: MappingConfig,
    header: list[str],
    columns: list[str],
    null_values: Sequence[str] | None = None,
    *,
    max_id_length: int = DEFAULT_MAX_ID_LENGTH,
) -> MappingPlan:
    """Resolve every mapped column against the file; ConfigError names what is wrong.

    ``null_values``: the job's own list, compared exactly; None: the defaults, in any case."""
    fields = tuple(
        FieldPlan(target, tuple(_resolve(c, header, columns) for c in spec.sources), spec)
        for target, spec in mapping.fields.items()
    )
    tokens = any_case(DEFAULT_NULL_VALUES) if null_values is None else _trimmed(null_values)
    return MappingPlan(fields, tokens, max_id_length)


def _trimmed(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v.strip()))


#: The one character outside ASCII whose lower case is ASCII: KELVIN SIGN, "k".
_KELVIN: Final = "\u212a"
#: The most spellings ``any_case`` builds: a few short words have a few thousand.
MOST_SPELLINGS: Final = 20_000


@cache
def any_case(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """Every text whose lower case is one of the tokens lower-cased: looking a cell up among
    them costs less than lower-casing every cell. Exact for ASCII tokens (for others only
    their upper and lower case are given); ``ValueError`` past ``MOST_SPELLINGS``."""
    cases = [[_cases(c) for c in token] for token in tokens]
    if sum(math.prod(map(len, token)) for token in cases) > MOST_SPELLINGS:
        raise ValueError(f"more than {MOST_SPELLINGS} spellings")
    return tuple(sorted({"".join(chars) for token in cases for chars in itertools.product(*token)}))


def _cases(char: str) -> set[str]:
    return {char.lower(), char.upper(), *((_KELVIN,) if char in "kK" else ())}


def _resolve(column: str | int, header: list[str], columns: list[str]) -> str:
    if isinstance(column, int):
        return _by_position(column, columns)
    return _by_name(column, header, columns)


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
    with null tokens as null; names in NFC. ``INEXACT_ID`` too when the id comes
    from a float column."""
    fields = [f for f in plan.fields if only is None or f.target in only]
    cleaned = _cleaned(frame, list(dict.fromkeys(c for f in fields for c in f.columns)), plan)
    exprs = [_field_expr(f) for f in fields]
    exprs += [_inexact_expr(f) for f in fields if any(f.float_limits)]
    return _in_nfc(cleaned.select(pl.col(ROW), *exprs), [f.target for f in fields])


def _cleaned(frame: pl.DataFrame, columns: list[str], plan: MappingPlan) -> pl.DataFrame:
    """ROW and ``columns`` trimmed, empty and null-like cells as null. In two steps, so that
    each cell is trimmed once (an expression used twice in one query is computed twice)."""
    trimmed = frame.select(ROW, *(pl.col(c).str.strip_chars() for c in columns))
    tokens = _as_list((*plan.null_values, ""))
    return trimmed.with_columns(pl.when(~pl.col(c).is_in(tokens)).then(pl.col(c)) for c in columns)


@cache
def _as_list(values: tuple[str, ...]) -> pl.Series:
    """The tokens as one list value, built once: the default tokens' few thousand spellings
    cost more to convert than to look up, batch after batch."""
    return pl.Series(values, dtype=pl.String).implode()


def _field_expr(field: FieldPlan) -> pl.Expr:
    spec = field.spec
    if not field.columns:
        return pl.lit(_constant_text(spec.value), dtype=pl.String).alias(field.target)
    values = [_column_value(field.target, c) for c in field.columns]
    if spec.default is not None:
        values.append(pl.lit(_constant_text(spec.default), dtype=pl.String))
    expr = values[0] if len(values) == 1 else pl.coalesce(values)
    if spec.part is not None:
        expr = _name_part(expr, spec.part)
    return expr.alias(field.target)


def _column_value(target: str, column: str) -> pl.Expr:
    """A cleaned column's value for ``target`` (``_cleaned`` made the frame)."""
    expr = pl.col(column)
    if target in _EXCEL_TEXT_PREFIX_FIELDS:
        expr = _strip_excel_prefix(expr)
    return expr


def _inexact_expr(field: FieldPlan) -> pl.Expr:
    """True where the value taken comes from a float column and is not an exact integer."""
    flags = []
    for column, limit in zip(field.columns, field.float_limits, strict=True):
        value = _column_value(field.target, column)
        inexact = _not_exact_integer(value, limit) if limit else pl.lit(False)
        flags.append(pl.when(value.is_not_null()).then(inexact))
    return pl.coalesce(flags).fill_null(False).alias(INEXACT_ID)


def _not_exact_integer(text: pl.Expr, limit: float) -> pl.Expr:
    """A float column's text (``source.parquet_file``) that is not an integer below ``limit``:
    a fraction, or a magnitude where the float had already rounded the integer."""
    whole = text.str.contains(r"^-?\d+$")
    return ~(whole & (text.cast(pl.Float64, strict=False).abs() < limit))


def _in_nfc(mapped: pl.DataFrame, targets: list[str]) -> pl.DataFrame:
    """Names in NFC. Only the values that are not plain ASCII are normalised: Polars works out
    a ``then`` for the rows its ``when`` holds for alone, and normalising every value would
    cost as much as the rest of the mapping."""
    targets = [t for t in targets if t in _NFC_FIELDS]
    if not targets:
        return mapped
    return mapped.with_columns(
        pl.when(_not_ascii(pl.col(t))).then(pl.col(t).str.normalize("NFC")).otherwise(pl.col(t))
        for t in targets
    )


def _not_ascii(text: pl.Expr) -> pl.Expr:
    return (text.str.len_bytes() != text.str.len_chars()).fill_null(False)


def _constant_text(value: str | bool | None) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _strip_excel_prefix(expr: pl.Expr) -> pl.Expr:
    """A cleaned value (trimmed, not empty) less Excel's apostrophe, trimmed again; null when
    nothing is left. Only the values that start with one are changed: a tenth of the cost."""
    stripped = expr.str.strip_prefix("'").str.strip_chars()
    return pl.when(expr.str.starts_with("'")).then(stripped.replace("", None)).otherwise(expr)


def _name_part(expr: pl.Expr, part: str) -> pl.Expr:
    """Split a full name on its last run of whitespace: 'Mary Ann Smith' -> 'Mary Ann' / 'Smith'."""
    normalised = expr.str.replace_all(r"\s+", " ")
    has_space = normalised.str.contains(" ", literal=True)
    if part == "first":
        return pl.when(has_space).then(normalised.str.replace(r" [^ ]*$", "")).otherwise(normalised)
    return pl.when(has_space).then(normalised.str.extract(r" ([^ ]*)$", 1)).otherwise(None)


def id_only(frame: pl.DataFrame, plan: MappingPlan) -> pl.Series:
    """The cleaned externalId of each record, null where it cannot be a real id (validation
    rejects it): such ids are never counted as repeated, nor sharded together."""
    return usable_ids(map_batch(frame, plan, only=(EXTERNAL_ID,)), plan)


def usable_ids(mapped: pl.DataFrame, plan: MappingPlan) -> pl.Series:
    """``id_only`` of a batch already mapped."""
    ids = mapped[EXTERNAL_ID]
    inexact = mapped[INEXACT_ID] if INEXACT_ID in mapped.columns else None
    return ids.set(id_reasons(ids, inexact, plan.max_id_length).is_not_null(), None)
