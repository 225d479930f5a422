"""SQL for a journal column's text as an output file writes it (SQLite does the work: a
million rows are not looped over in Python)."""

from __future__ import annotations

from customer_import.contracts import FORMULA_CHARS


def sheet_safe(column: str) -> str:
    """SQL: the column's text ('' for null) as results.csv writes it: with a leading apostrophe
    where a spreadsheet would take it for a formula (``contracts.FORMULA_CHARS``, after any
    apostrophes, so reading the file back removes exactly the one added). ``unicode()`` of
    the first character keeps the check to a fifth of a second a million cells."""
    codes = ", ".join(str(ord(c)) for c in FORMULA_CHARS)
    mark = "''''"  # SQL for a text of one apostrophe
    after_marks = f"unicode({column}) = 39 AND unicode(ltrim({column}, {mark})) IN ({codes})"
    return (
        f"CASE WHEN unicode({column}) IN ({codes}) OR ({after_marks})"
        f" THEN {mark} || {column} ELSE ifnull({column}, '') END"
    )


def text(column: str) -> str:
    """SQL: the column's text, '' for null."""
    return f"ifnull({column}, '')"
