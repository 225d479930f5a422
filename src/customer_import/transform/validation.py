"""Pure: mapped rows -> request bodies for the valid ones, reasons for the rest.

Every check is a Polars expression over the whole batch, so a bad row is data (a reason
in a column), never an exception. Each field yields a normalised value and a reason;
a row is valid when no field has a reason. Bodies are JSON text built column-wise:
fields that are empty are left out, so an upsert never clears a stored value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

from customer_import.config import FieldMapping
from customer_import.contracts import BODY, EXTERNAL_ID, REASON, ROW
from customer_import.schema import BOOLEAN_FIELDS, REQUIRED_FIELDS, TARGET_FIELDS
from customer_import.transform.fastpath import fast_emails, fast_phones
from customer_import.transform.fieldstats import FieldStats
from customer_import.transform.mapping import FieldPlan, MappingPlan
from customer_import.transform.normalise import (
    EXCEL_HINT,
    EXCEL_NUMBER,
    CachedJudge,
    judge_email,
    judge_phone,
)

TRUE_WORDS: Final = ("true", "t", "yes", "y", "1")
FALSE_WORDS: Final = ("false", "f", "no", "n", "0")
_LOOKS_LIKE_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


@dataclass(frozen=True, slots=True)
class Validated:
    """``valid``: ROW, EXTERNAL_ID, BODY (JSON text). ``rejects``: ROW, EXTERNAL_ID, REASON."""

    valid: pl.DataFrame
    rejects: pl.DataFrame
    stats: FieldStats | None = None  # this batch's per-field counts, when asked for


class Validator:
    """Validates mapped batches; remembers phone and email verdicts across batches.

    Safe to call from several threads: the verdict caches are dicts, each step of which is
    atomic, and nothing else is shared between batches.
    """

    def __init__(self, plan: MappingPlan, stats_fields: tuple[str, ...] | None = None) -> None:
        self._plan = plan
        self._stats_fields = stats_fields
        self._email = CachedJudge(judge_email, fast_emails)
        phone = plan.field("phoneNumber")
        region = phone.spec.default_region if phone else None
        self._phone = CachedJudge(
            lambda value: judge_phone(value, region), lambda values: fast_phones(values, region)
        )

    def validate(self, mapped: pl.DataFrame) -> Validated:
        checked = mapped.with_columns(*self._library_checked(mapped)).with_columns(
            *(expr for f in self._plan.fields for expr in _field_checks(f))
        )
        reasons = [f"{f.target}{_ERR}" for f in self._plan.fields]
        checked = checked.with_columns(
            pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias(REASON)
        )
        stats = None
        if self._stats_fields is not None:
            stats = FieldStats(self._stats_fields)
            stats.add(checked, _ERR)
        bad = pl.col(REASON) != ""
        return Validated(
            valid=checked.filter(~bad).select(
                ROW, pl.col(f"{EXTERNAL_ID}{_OK}").alias(EXTERNAL_ID), _body_expr(self._plan)
            ),
            rejects=checked.filter(bad).select(ROW, EXTERNAL_ID, REASON),
            stats=stats,
        )

    def _library_checked(self, mapped: pl.DataFrame) -> list[pl.Series]:
        """Normalised value and reason columns for the fields judged by a library."""
        out: list[pl.Series] = []
        for target, judge in (("email", self._email), ("phoneNumber", self._phone)):
            if target in mapped.columns:
                good, bad = judge.apply(mapped[target])
                out += [good.alias(f"{target}{_LIB_OK}"), bad.alias(f"{target}{_LIB_ERR}")]
        return out


# Suffixes of the working columns: checked value, and reason (null when the value is fine).
_OK = "__ok"
_ERR = "__err"
_LIB_OK = "__lib_ok"
_LIB_ERR = "__lib_err"


def _field_checks(field: FieldPlan) -> list[pl.Expr]:
    target = field.target
    if target in BOOLEAN_FIELDS:
        value, reason = _boolean(target, field.spec)
    elif target in ("email", "phoneNumber"):
        value, reason = pl.col(f"{target}{_LIB_OK}"), pl.col(f"{target}{_LIB_ERR}")
    else:
        value, reason = pl.col(target), _text_reason(target)
    if target in REQUIRED_FIELDS:
        reason = (
            pl.when(pl.col(target).is_null()).then(pl.lit("required, but empty")).otherwise(reason)
        )
    labelled = pl.when(reason.is_not_null()).then(pl.lit(f"{target}: ") + reason)
    return [value.alias(f"{target}{_OK}"), labelled.alias(f"{target}{_ERR}")]


def _text_reason(target: str) -> pl.Expr:
    value = pl.col(target)
    if target == EXTERNAL_ID:
        return pl.when(value.str.contains(EXCEL_NUMBER.pattern)).then(
            pl.lit("'") + value + pl.lit(f"' {EXCEL_HINT}")
        )
    if target in ("firstName", "lastName"):
        return pl.when(value.str.contains(_LOOKS_LIKE_EMAIL)).then(
            pl.lit("'")
            + value
            + pl.lit("' looks like an email address, not a name: check the mapping")
        )
    return pl.lit(None, dtype=pl.String)


def _boolean(target: str, spec: FieldMapping) -> tuple[pl.Expr, pl.Expr]:
    true_words = sorted({*TRUE_WORDS, *(w.strip().lower() for w in spec.true)})
    false_words = sorted({*FALSE_WORDS, *(w.strip().lower() for w in spec.false)})
    word = pl.col(target).str.to_lowercase()
    parsed = pl.when(word.is_in(true_words)).then(True).when(word.is_in(false_words)).then(False)
    value = parsed.not_() if spec.invert else parsed
    expected = "/".join(true_words) + " or " + "/".join(false_words)
    reason = pl.when(pl.col(target).is_not_null() & parsed.is_null()).then(
        pl.lit("'") + pl.col(target) + pl.lit(f"' is not a yes/no value (expected {expected})")
    )
    return value, reason


def _body_expr(plan: MappingPlan) -> pl.Expr:
    """The JSON request body; empty optional fields are omitted, not sent as null."""
    mapped = set(plan.targets)
    top = [_member(t, t) for t in TARGET_FIELDS if "." not in t and t in mapped]
    nested = [_member(t, t.split(".", 1)[1]) for t in TARGET_FIELDS if "." in t and t in mapped]
    if nested:
        inner = pl.concat_str(nested, separator=",", ignore_nulls=True)
        top.append(
            pl.when(inner != "").then(pl.lit('"notificationOptions":{') + inner + pl.lit("}"))
        )
    body = pl.concat_str(top, separator=",", ignore_nulls=True)
    return (pl.lit("{") + body + pl.lit("}")).alias(BODY)


def _member(target: str, key: str) -> pl.Expr:
    """'"key":<json value>' or null when the value is empty."""
    value = pl.col(f"{target}{_OK}")
    encoded = pl.struct(value.alias(key)).struct.json_encode()
    return pl.when(value.is_not_null()).then(encoded.str.strip_prefix("{").str.strip_suffix("}"))
