"""Pure: per target field, how many values were valid, empty, rejected or omitted, and why.

When ``customer-import check`` asks for it, the validator counts each batch's checked frame
into a FieldStats of its own, and the run merges those in file order (batches are validated
on several threads). Reasons are grouped by kind (the values left out) with a few examples.

The counts describe the records that reach results.csv and rejects.csv as judged: a record
superseded by a later one of its id (results.csv ``duplicate``) was neither sent nor rejected
for its values, so records of repeated ids are held (``hold``) until the run has decided which
of them count (``settle``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from customer_import.contracts import ROW

EXAMPLES: Final = 3
_KIND: Final = "_kind"
#: Suffixes of a checked frame's columns beside each target field's value: the reason that
#: rejects the record ("field: ...") and the reason the value was omitted (null when none).
ERR: Final = "__err"
OMIT: Final = "__omit"


@dataclass(slots=True)
class FieldReport:
    valid: int = 0
    empty: int = 0
    rejected: int = 0
    omitted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def top_reasons(self, n: int = 3) -> list[tuple[str, int, list[str]]]:
        return [
            (kind, count, self.examples.get(kind, []))
            for kind, count in self.reasons.most_common(n)
        ]


class FieldStats:
    """Accumulates one FieldReport per target field, batch after batch."""

    def __init__(self, targets: tuple[str, ...]) -> None:
        self.fields = {target: FieldReport() for target in targets}
        self._held: list[pl.DataFrame] = []

    def add(self, checked: pl.DataFrame) -> None:
        """Counts a checked frame: each target's value, ERR and OMIT columns. Every field's
        counts in one pass over the frame; reasons only for the fields that have some."""
        if not checked.height:
            return
        counts = checked.select(
            expr for target in self.fields for expr in _count_exprs(target)
        ).row(0, named=True)
        for target, report in self.fields.items():
            empty, rejected, omitted = (counts[f"{target}{k}"] for k in _COUNTS)
            report.empty += empty
            report.rejected += rejected
            report.omitted += omitted
            report.valid += checked.height - empty - rejected - omitted
            if rejected or omitted:
                _add_reasons_of(report, checked, target, rejected=rejected, omitted=omitted)

    def hold(self, checked: pl.DataFrame) -> None:
        """Records of repeated ids: counted by ``settle`` once the run has decided them."""
        if checked.height:
            self._held.append(checked)

    def settle(self, superseded: set[int]) -> None:
        """Counts the held records, less those another record of their id superseded."""
        held, self._held = self._held, []
        for frame in held:
            self.add(frame.filter(~pl.col(ROW).is_in(sorted(superseded))))

    def merge(self, later: FieldStats) -> None:
        """Adds the counts of later batches, as if ``add`` had been called with them."""
        self._held += later._held
        for target, report in later.fields.items():
            total = self.fields[target]
            total.valid += report.valid
            total.empty += report.empty
            total.rejected += report.rejected
            total.omitted += report.omitted
            total.reasons.update(report.reasons)
            for kind, examples in report.examples.items():
                _keep_examples(total, kind, examples)


_COUNTS: Final = ("#empty", "#rejected", "#omitted")


def _count_exprs(target: str) -> list[pl.Expr]:
    value, err, omit = pl.col(target), pl.col(f"{target}{ERR}"), pl.col(f"{target}{OMIT}")
    return [
        (value.is_null() & err.is_null()).sum().alias(f"{target}#empty"),
        err.is_not_null().sum().alias(f"{target}#rejected"),
        omit.is_not_null().sum().alias(f"{target}#omitted"),
    ]


def _add_reasons_of(
    report: FieldReport, checked: pl.DataFrame, target: str, *, rejected: int, omitted: int
) -> None:
    value, err, omit = pl.col(target), pl.col(f"{target}{ERR}"), pl.col(f"{target}{OMIT}")
    if rejected:
        kinds = err.str.replace(r"^[^:]+: ", "")
        _add_reasons(report, checked.filter(err.is_not_null()), value, kinds)
    if omitted:
        kinds = pl.lit("omitted: ") + omit
        _add_reasons(report, checked.filter(omit.is_not_null()), value, kinds)


def _add_reasons(report: FieldReport, judged: pl.DataFrame, value: pl.Expr, why: pl.Expr) -> None:
    kinds = judged.with_columns(why.str.replace_all(r"'[^']*'", "…").alias(_KIND))
    grouped = kinds.group_by(_KIND).agg(
        pl.len().alias("n"), value.fill_null("").unique().head(EXAMPLES)
    )
    for kind, count, examples in grouped.iter_rows():
        report.reasons[kind] += count
        _keep_examples(report, kind, examples)


def _keep_examples(report: FieldReport, kind: str, examples: list[str]) -> None:
    kept = report.examples.setdefault(kind, [])
    kept += [e for e in examples if e not in kept][: EXAMPLES - len(kept)]
