"""Pure: which externalIds a person can trust, and why the others are rejected.

An id is the customer's key: the job never changes it beyond trimming (and Excel's leading
apostrophe), so an id that could be mistaken for another is rejected rather than "fixed":

- a float column's value that is not an exact integer (Parquet): the id was rounded;
- Excel's scientific notation (``7.02255E+12``): Excel rounded the number, and several
  customers may now share the rounded value;
- an invisible or control character (C0/C1 controls, zero-width and bidirectional marks, a
  BOM): two ids that print the same would be two customers;
- a character sequence that is not in Unicode NFC (``e`` + a combining accent instead of
  ``é``): the same; the job does not normalise ids, since the API may hold either spelling;
- more than ``max_id_length`` characters.

Every id is checked column-wise; only the rare ids holding a character outside printable
ASCII are looked at one by one, to name the character and its position.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import polars as pl

from customer_import.transform.normalise import EXCEL_HINT, EXCEL_NUMBER

FLOAT_HINT: Final = "a float column cannot hold this id exactly: export it as text"
_UNTRUSTED: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_NOT_PRINTABLE_ASCII: Final = r"[^\x20-\x7e]"
_SUSPECT: Final = f"{EXCEL_NUMBER.pattern}|{_NOT_PRINTABLE_ASCII}"
_SHOWN: Final = 20  # characters of a too-long id shown in its reason
#: Names of the control characters Unicode leaves unnamed, as people know them.
_CONTROL_NAMES: Final = {
    "\x00": "NULL",
    "\t": "CHARACTER TABULATION",
    "\n": "LINE FEED",
    "\r": "CARRIAGE RETURN",
    "\x1b": "ESCAPE",
    "\x7f": "DELETE",
    "\x85": "NEXT LINE",
    "\ufeff": "BYTE ORDER MARK",
}


def id_reasons(ids: pl.Series, inexact: pl.Series | None, max_length: int) -> pl.Series:
    """Why each id cannot be used (null where it can, and for a null id): the first problem.

    One pass over every id finds the few that may have a problem; only those are judged."""
    flags = _flags(inexact, len(ids))
    value = pl.col("id")
    suspect = (value.str.contains(_SUSPECT) | (value.str.len_bytes() > max_length)).fill_null(
        False  # a character is a byte or more: no longer in characters than in bytes
    ) | pl.col("inexact")
    frame = pl.DataFrame({"id": ids, "inexact": flags})
    at = frame.select(suspect.arg_true()).to_series()
    reasons = pl.repeat(None, len(ids), dtype=pl.String, eager=True).alias(ids.name)
    if at.is_empty():
        return reasons
    found = _judged(ids.gather(at), flags.gather(at), max_length)
    return reasons.scatter(at, found)


def _judged(ids: pl.Series, inexact: pl.Series, max_length: int) -> pl.Series:
    value, length = pl.col("id"), pl.col("id").str.len_chars()
    checks = pl.DataFrame({"id": ids, "inexact": inexact}).select(
        pl.when(pl.col("inexact"))  # a float's text can look like Excel's: "7.02e+12"
        .then(pl.lit("'") + value + pl.lit(f"': {FLOAT_HINT}"))
        .when(value.str.contains(EXCEL_NUMBER.pattern))
        .then(pl.lit("'") + value + pl.lit(f"' {EXCEL_HINT}"))
        .alias("shape"),
        pl.when(length > max_length)
        .then(
            pl.lit("'")
            + pl.when(length > _SHOWN)
            .then(value.str.slice(0, _SHOWN) + pl.lit("…"))
            .otherwise(value)
            + pl.lit("' is ")
            + length.cast(pl.String)
            + pl.lit(f" characters long, more than max_id_length = {max_length}")
        )
        .alias("length"),
    )
    shape, too_long = checks["shape"], checks["length"]
    return shape.fill_null(_character_reasons(ids)).fill_null(too_long)


def _flags(inexact: pl.Series | None, length: int) -> pl.Series:
    if inexact is None:
        return pl.repeat(False, length, dtype=pl.Boolean, eager=True)
    return inexact.fill_null(False)


def _character_reasons(ids: pl.Series) -> pl.Series:
    """The reason for ids holding an untrusted character or not in NFC; null for the others."""
    odd = ids.str.contains(_NOT_PRINTABLE_ASCII).fill_null(False)
    if not odd.any():
        return pl.repeat(None, len(ids), dtype=pl.String, eager=True)
    values = ids.filter(odd).unique()
    found = pl.Series([character_reason(v) for v in values.to_list()], dtype=pl.String)
    return ids.replace_strict(values, found, default=None, return_dtype=pl.String)


def character_reason(value: str) -> str | None:
    """Why ``value`` cannot be an id because of one of its characters, or None."""
    for position, char in enumerate(value, 1):
        if _UNTRUSTED.match(char):
            return (
                f"{value!r} holds {_describe(char)} at position {position}: an invisible or "
                "control character, so the id would look like another one. Remove it in the "
                "export"
            )
    return _nfc_reason(value)


def _nfc_reason(value: str) -> str | None:
    if unicodedata.is_normalized("NFC", value):
        return None
    position = next(
        i for i in range(1, len(value) + 1) if not unicodedata.is_normalized("NFC", value[:i])
    )
    return (
        f"{value!r} is not in Unicode NFC form ({_describe(value[position - 1])} at position "
        f"{position}): the same-looking id in NFC would be another customer. Export the ids in "
        "NFC, the usual form"
    )


def _describe(char: str) -> str:
    name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "a control character")
    return f"U+{ord(char):04X} {name}"
