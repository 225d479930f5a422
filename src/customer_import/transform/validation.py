"""Pure: mapped rows -> request bodies for the valid ones, reasons for the rest.

Every check is a Polars expression over the whole batch, so a bad row is data (a reason
in a column), never an exception. Each field yields a normalised value and a reason;
a row is valid when no field has a reason. A field mapped with ``on_invalid = "omit"`` turns
its reason into an omission instead: the value is left out and the record stays valid. Bodies
are JSON text built column-wise: fields that are empty are left out, so an upsert never clears
a stored value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

import polars as pl

from customer_import.config import FieldMapping
from customer_import.contracts import BODY, EXTERNAL_ID, PEOPLE, REASON, ROW
from customer_import.schema import BOOLEAN_FIELDS, REQUIRED_FIELDS, TARGET_FIELDS
from customer_import.transform.fastpath import fast_emails, fast_phones
from customer_import.transform.fieldstats import ERR, OMIT, FieldStats
from customer_import.transform.ids import id_reasons
from customer_import.transform.mapping import (
    INEXACT_ID,
    FieldPlan,
    MappingPlan,
    any_case,
)
from customer_import.transform.normalise import CachedJudge, judge_email, judge_phone

TRUE_WORDS: Final = ("true", "t", "yes", "y", "1")
FALSE_WORDS: Final = ("false", "f", "no", "n", "0")
_LOOKS_LIKE_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


#: The engine eager Polars calls use: these queries are small.
_EAGER: Final = "in-memory"

#: Columns of ``Validated.omitted``.
FIELD: Final = "_field"


@dataclass(frozen=True, slots=True)
class Validated:
    """``valid``: ROW, EXTERNAL_ID, BODY (JSON text), and ``PEOPLE`` as the body holds them
    (null where it has none: results' names). ``rejects``: ROW, EXTERNAL_ID, REASON.
    ``omitted``: ROW, FIELD, REASON of the values left out of valid records. ``ids``: each
    record's externalId, null where it cannot be a real id (``mapping.usable_ids``)."""

    valid: pl.DataFrame
    rejects: pl.DataFrame
    omitted: pl.DataFrame
    ids: pl.Series
    stats: FieldStats | None = None  # this batch's per-field counts, when asked for
    checked: pl.DataFrame | None = None
    """With ``stats``: ROW and each field's value, reason and omission, to count some of the
    records apart (``FieldStats.add``)."""


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
        self._stages = _stages(plan)

    def validate(self, mapped: pl.DataFrame) -> Validated:
        # In stages: a column an expression reads twice is computed once, in the stage before.
        parsed, first, second, reason = self._stages
        checked = (
            mapped.with_columns(*self._series_checked(mapped), *parsed)
            .with_columns(first)
            .with_columns(second)
            .with_columns(reason)
        )
        bad = pl.col(REASON) != ""
        valid = checked.lazy().filter(~bad)  # each query filters only the columns it reads
        validated = Validated(
            valid=_with_bodies(valid, self._plan),
            rejects=checked.lazy()
            .filter(bad)
            .select(ROW, EXTERNAL_ID, REASON)
            .collect(engine=_EAGER),
            omitted=_omitted(valid, self._plan),
            ids=_usable_ids(checked),
        )
        return self._counted(validated, checked) if self._stats_fields else validated

    def _counted(self, validated: Validated, checked: pl.DataFrame) -> Validated:
        assert self._stats_fields is not None
        narrow = _for_stats(checked, self._plan)
        stats = FieldStats(self._stats_fields)
        stats.add(narrow)
        return replace(validated, stats=stats, checked=narrow)

    def _series_checked(self, mapped: pl.DataFrame) -> list[pl.Series]:
        """Normalised value and reason columns for the fields judged a value at a time: by a
        library (emails, phones), or by what their characters are (ids)."""
        out: list[pl.Series] = []
        for target, judge in (("email", self._email), ("phoneNumber", self._phone)):
            if target in mapped.columns:
                good, bad = judge.apply(mapped[target])
                out += [good.alias(f"{target}{_LIB_OK}"), bad.alias(f"{target}{_LIB_ERR}")]
        if EXTERNAL_ID in mapped.columns:
            inexact = mapped[INEXACT_ID] if INEXACT_ID in mapped.columns else None
            ids = id_reasons(mapped[EXTERNAL_ID], inexact, self._plan.max_id_length)
            out.append(ids.alias(f"{EXTERNAL_ID}{_LIB_ERR}"))
        return out


def _usable_ids(checked: pl.DataFrame) -> pl.Series:
    """The ids, null where ``id_reasons`` found one unusable (``mapping.usable_ids``)."""
    usable = pl.when(pl.col(f"{EXTERNAL_ID}{_LIB_ERR}").is_null()).then(pl.col(EXTERNAL_ID))
    return checked.select(usable.alias(EXTERNAL_ID)).to_series()


def _stages(plan: MappingPlan) -> tuple[list[pl.Expr], ...]:
    """``validate``'s expressions, stage by stage (built once: a batch's worth of Python
    otherwise): yes/no words read, each field's value and reason, what each reason does,
    and the record's reasons joined."""
    parsed = [_parsed_boolean(f) for f in plan.fields if f.target in BOOLEAN_FIELDS]
    checks = [_field_checks(f) for f in plan.fields]
    reasons = [f"{f.target}{ERR}" for f in plan.fields]
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias(REASON)
    return parsed, [e for c, _ in checks for e in c], [e for _, c in checks for e in c], [joined]


# Suffixes of the working columns: the checked value; ERR and OMIT (fieldstats.py) hold the
# reason that rejects the record ("field: ...") or that left an omitted value out.
_OK = "__ok"
_LIB_OK = "__lib_ok"
_LIB_ERR = "__lib_err"


_WHY = "__why"  # the reason a value is invalid, before it is labelled or made an omission
_PARSED = "__parsed"  # a yes/no column's value read as a boolean


def _field_checks(field: FieldPlan) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """The checked value and the reason (a first stage), then what the reason does: reject
    the record, labelled with the field, or leave the value out (the second)."""
    target = field.target
    value, reason = _checked(field)
    if target in REQUIRED_FIELDS:
        reason = (
            pl.when(pl.col(target).is_null()).then(pl.lit("required, but empty")).otherwise(reason)
        )
    first = [value.alias(f"{target}{_OK}"), reason.alias(f"{target}{_WHY}")]
    why = pl.col(f"{target}{_WHY}")
    if field.spec.on_invalid == "omit":
        return first, [
            pl.when(why.is_null()).then(pl.col(f"{target}{_OK}")).alias(f"{target}{_OK}"),
            pl.lit(None, dtype=pl.String).alias(f"{target}{ERR}"),
            why.alias(f"{target}{OMIT}"),
        ]
    labelled = pl.when(why.is_not_null()).then(pl.concat_str([pl.lit(f"{target}: "), why]))
    return first, [labelled.alias(f"{target}{ERR}")]


def _checked(field: FieldPlan) -> tuple[pl.Expr, pl.Expr]:
    """The field's checked value and the reason it is invalid (null when it is not)."""
    target = field.target
    if target in BOOLEAN_FIELDS:
        return _boolean(target, field.spec)
    if target in ("email", "phoneNumber"):
        return pl.col(f"{target}{_LIB_OK}"), pl.col(f"{target}{_LIB_ERR}")
    if target == EXTERNAL_ID:
        return pl.col(target), pl.col(f"{target}{_LIB_ERR}")
    return pl.col(target), _text_reason(target)


def _text_reason(target: str) -> pl.Expr:
    value = pl.col(target)
    if target in ("firstName", "lastName"):
        return pl.when(value.str.contains(_LOOKS_LIKE_EMAIL)).then(
            pl.lit("'")
            + value
            + pl.lit("' looks like an email address, not a name: check the mapping")
        )
    return pl.lit(None, dtype=pl.String)


def _words(spec: FieldMapping) -> tuple[list[str], list[str]]:
    true_words = sorted({*TRUE_WORDS, *(w.strip().lower() for w in spec.true)})
    false_words = sorted({*FALSE_WORDS, *(w.strip().lower() for w in spec.false)})
    return true_words, false_words


def _parsed_boolean(field: FieldPlan) -> pl.Expr:
    """True, False, or null for a word of neither list (a word in both reads as true), in any
    case: ASCII words are looked up in every spelling (``any_case``), which costs a third
    of lower-casing every value first."""
    true_words, false_words = _words(field.spec)
    words = [*false_words, *true_words]
    spelled = _spelled(words)
    word = pl.col(field.target)
    if spelled is None:
        word, spelled = word.str.to_lowercase(), {w: w for w in words}
    meaning = {spelling: w in true_words for spelling, w in spelled.items()}
    parsed = word.replace_strict(
        list(meaning), list(meaning.values()), default=None, return_dtype=pl.Boolean
    )
    return parsed.alias(f"{field.target}{_PARSED}")


def _spelled(words: list[str]) -> dict[str, str] | None:
    """Each spelling of the (lower-case) words -> its word; None for a word outside ASCII, or
    words long enough to have more spellings than ``MOST_SPELLINGS``."""
    if not all(w.isascii() for w in words):
        return None
    try:
        any_case(tuple(words))  # raises past the limit
    except ValueError:
        return None
    return {spelling: w for w in words for spelling in any_case((w,))}


def _boolean(target: str, spec: FieldMapping) -> tuple[pl.Expr, pl.Expr]:
    """The value and reason of a yes/no field, from its ``_parsed_boolean`` column."""
    true_words, false_words = _words(spec)
    parsed = pl.col(f"{target}{_PARSED}")
    value = parsed.not_() if spec.invert else parsed
    expected = "/".join(true_words) + " or " + "/".join(false_words)
    reason = pl.when(pl.col(target).is_not_null() & parsed.is_null()).then(
        pl.lit("'") + pl.col(target) + pl.lit(f"' is not a yes/no value (expected {expected})")
    )
    return value, reason


def _omitted(valid: pl.LazyFrame, plan: MappingPlan) -> pl.DataFrame:
    """ROW, FIELD, REASON: one row per value left out of a valid record."""
    empty = pl.LazyFrame(schema={ROW: pl.Int64, FIELD: pl.String, REASON: pl.String})
    parts = [
        valid.filter(pl.col(f"{t}{OMIT}").is_not_null()).select(
            ROW, pl.lit(t).alias(FIELD), pl.col(f"{t}{OMIT}").alias(REASON)
        )
        for t in (f.target for f in plan.fields if f.spec.on_invalid == "omit")
    ]
    return pl.concat([empty, *parts]).collect(engine=_EAGER)


def _for_stats(checked: pl.DataFrame, plan: MappingPlan) -> pl.DataFrame:
    """What ``FieldStats`` reads: each field's value, reason and omission (null when none)."""
    columns = [pl.col(ROW)]
    for f in plan.fields:
        omit = pl.col(f"{f.target}{OMIT}") if f.spec.on_invalid == "omit" else pl.lit(None)
        columns += [
            pl.col(f.target),
            pl.col(f"{f.target}{ERR}"),
            omit.cast(pl.String).alias(f"{f.target}{OMIT}"),
        ]
    return checked.select(columns)


def _with_bodies(valid: pl.LazyFrame, plan: MappingPlan) -> pl.DataFrame:
    """ROW, EXTERNAL_ID, BODY and ``PEOPLE`` of the valid records. The body is Polars' JSON
    encoding of the checked values (``TARGET_FIELDS`` order, notificationOptions nested);
    empty fields are then cut out, only from the bodies that have one, so an upsert never
    clears a stored value."""
    names = [
        (pl.col(f"{t}{_OK}") if t in plan.targets else pl.lit(None, pl.String)).alias(t)
        for t in PEOPLE
    ]
    out = valid.select(
        ROW, pl.col(f"{EXTERNAL_ID}{_OK}").alias(EXTERNAL_ID), _encoded(plan), *names
    ).collect(engine=_EAGER)
    gaps = out[BODY].str.contains(":null", literal=True).arg_true()
    if gaps.is_empty():
        return out
    return out.with_columns(out[BODY].scatter(gaps, _without_nulls(out[BODY][gaps], plan)))


def _encoded(plan: MappingPlan) -> pl.Expr:
    """The JSON text of the checked values, empty ones as null."""
    mapped = set(plan.targets)
    top = [pl.col(f"{t}{_OK}").alias(t) for t in TARGET_FIELDS if "." not in t and t in mapped]
    nested = [
        pl.col(f"{t}{_OK}").alias(t.split(".", 1)[1])
        for t in TARGET_FIELDS
        if "." in t and t in mapped
    ]
    if nested:
        top.append(pl.struct(nested).alias(_NESTED))
    return pl.struct(top).struct.json_encode().alias(BODY)


def _without_nulls(bodies: pl.Series, plan: MappingPlan) -> pl.Series:
    """Bodies less their null members, and less an object left empty by it. A JSON string
    holds no unescaped quote, so no value's text is taken for a member."""
    keys = "|".join(re.escape(t.rsplit(".", 1)[-1]) for t in plan.targets)
    return (
        bodies.str.replace_all(f',"(?:{keys})":null', "")  # a member after another
        .str.replace_all(f'\\{{"(?:{keys})":null,?', "{")  # an object's first member
        .str.replace_all(f',"{_NESTED}":\\{{\\}}', "")
    )


#: The object the notificationOptions.* fields are members of.
_NESTED: Final = "notificationOptions"
