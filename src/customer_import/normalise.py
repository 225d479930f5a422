"""Per-value judges for phones and emails, wrapped for Polars columns.

phonenumbers and email-validator are the field's standards and stay the judge of every
value; they cost tens of microseconds a call, so each distinct value is judged once and
remembered (exports repeat area codes, placeholder values and shared inboxes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import phonenumbers
import polars as pl
from email_validator import EmailNotValidError, validate_email

#: (normalised value, None) when good, (None, reason) when not.
Verdict = tuple[str | None, str | None]

_CACHE_LIMIT: Final = 200_000
EXCEL_NUMBER = re.compile(r"^[+-]?\d+([.,]\d+)?[eE][+-]?\d+$")
EXCEL_HINT: Final = (
    "is in Excel's scientific notation: the file went through Excel, which rounds long numbers "
    "(several customers can collapse onto one value); re-export without opening it in Excel, "
    "or format the column as Text"
)


def judge_phone(value: str, region: str | None) -> Verdict:
    """E.164 when phonenumbers finds a valid number; an extension is dropped."""
    if EXCEL_NUMBER.match(value):
        return None, f"{value!r} {EXCEL_HINT}"
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        return None, f"{value!r} is not a phone number ({_parse_error_text(exc)})"
    number = _drop_mexican_mobile_prefix(number)
    if not phonenumbers.is_valid_number(number):
        where = f" (numbers without a country code are read as {region})" if region else ""
        return None, f"{value!r} is not a valid phone number{where}"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def _parse_error_text(exc: phonenumbers.NumberParseException) -> str:
    if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
        return "no country code: start it with + or set default_region"
    return str(exc.args[0] if exc.args else exc).rstrip(".").lower()


def _drop_mexican_mobile_prefix(number: phonenumbers.PhoneNumber) -> phonenumbers.PhoneNumber:
    """Mexico dropped the mobile '1' after +52 in 2019: +52 1 55... is today +52 55..."""
    national = str(number.national_number)
    if number.country_code == 52 and len(national) == 11 and national.startswith("1"):
        return phonenumbers.PhoneNumber(country_code=52, national_number=int(national[1:]))
    return number


def judge_email(value: str) -> Verdict:
    """Syntax only (never a DNS lookup); the domain is lower-cased by email-validator."""
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"{value!r} is not a valid email address ({str(exc).rstrip('.')})"
    return result.normalized, None


class CachedJudge:
    """Applies a per-value judge to a text column, once per distinct value."""

    def __init__(self, judge: Callable[[str], Verdict]) -> None:
        self._judge = judge
        self._cache: dict[str, Verdict] = {}

    def apply(self, column: pl.Series) -> tuple[pl.Series, pl.Series]:
        """(normalised, reason) Series aligned with ``column``; nulls stay null in both."""
        distinct = column.drop_nulls().unique().to_list()
        verdicts = [self._verdict(v) for v in distinct]
        good = column.replace_strict(
            distinct, [v[0] for v in verdicts], default=None, return_dtype=pl.String
        )
        bad = column.replace_strict(
            distinct, [v[1] for v in verdicts], default=None, return_dtype=pl.String
        )
        return good, bad

    def _verdict(self, value: str) -> Verdict:
        verdict = self._cache.get(value)
        if verdict is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            verdict = self._cache[value] = self._judge(value)
        return verdict
