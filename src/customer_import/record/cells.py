"""A results column's text as an output file writes it: Polars expressions (a million rows
are not looped over in Python)."""

from __future__ import annotations

import polars as pl

from customer_import.contracts import FORMULA_CHARS


def sheet_safe(column: str) -> pl.Expr:
    """The column's text as results.csv writes it: with a leading apostrophe where a
    spreadsheet would take it for a formula (``contracts.FORMULA_CHARS``, after any
    apostrophes, so reading the file back removes exactly the one added)."""
    value = pl.col(column)
    risky = list(FORMULA_CHARS)
    first = value.str.slice(0, 1)
    after_marks = (first == "'") & value.str.strip_chars_start("'").str.slice(0, 1).is_in(risky)
    marked = pl.when(first.is_in(risky) | after_marks).then("'" + value)
    return marked.otherwise(value).alias(column)
