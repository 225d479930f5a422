"""Pure: per target field, how many values were valid, empty or rejected, and why.

When ``customer-import check`` asks for it, the validator counts each batch's checked frame
into a FieldStats of its own, and the run merges those in file order (batches are validated
on several threads). Reasons are grouped by kind (the values left out) with a few examples.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import polars as pl

EXAMPLES: Final = 3
_KIND: Final = "_kind"


@dataclass(slots=True)
class FieldReport:
    valid: int = 0
    empty: int = 0
    rejected: int = 0
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

    def add(self, checked: pl.DataFrame, error_suffix: str) -> None:
        for target, report in self.fields.items():
            _add_field(
                report,
                checked.select(pl.col(target), pl.col(f"{target}{error_suffix}").alias("_err")),
            )

    def merge(self, later: FieldStats) -> None:
        """Adds the counts of later batches, as if ``add`` had been called with them."""
        for target, report in later.fields.items():
            total = self.fields[target]
            total.valid += report.valid
            total.empty += report.empty
            total.rejected += report.rejected
            total.reasons.update(report.reasons)
            for kind, examples in report.examples.items():
                _keep_examples(total, kind, examples)


def _add_field(report: FieldReport, frame: pl.DataFrame) -> None:
    value, err = pl.col(frame.columns[0]), pl.col("_err")
    counts = frame.select(
        empty=(value.is_null() & err.is_null()).sum(),
        rejected=err.is_not_null().sum(),
        total=pl.len(),
    ).row(0, named=True)
    report.empty += counts["empty"]
    report.rejected += counts["rejected"]
    report.valid += counts["total"] - counts["empty"] - counts["rejected"]
    if counts["rejected"]:
        _add_reasons(report, frame.filter(err.is_not_null()), value)


def _add_reasons(report: FieldReport, rejected: pl.DataFrame, value: pl.Expr) -> None:
    kinds = rejected.with_columns(
        pl.col("_err").str.replace(r"^[^:]+: ", "").str.replace_all(r"'[^']*'", "…").alias(_KIND)
    )
    grouped = kinds.group_by(_KIND).agg(
        pl.len().alias("n"), value.fill_null("").unique().head(EXAMPLES)
    )
    for kind, count, examples in grouped.iter_rows():
        report.reasons[kind] += count
        _keep_examples(report, kind, examples)


def _keep_examples(report: FieldReport, kind: str, examples: list[str]) -> None:
    kept = report.examples.setdefault(kind, [])
    kept += [e for e in examples if e not in kept][: EXAMPLES - len(kept)]
