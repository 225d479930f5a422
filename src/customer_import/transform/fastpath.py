"""Vectorised answers for clearly valid phones and emails; the libraries judge the rest.

phonenumbers and email-validator cost tens of microseconds a value, which caps a dry run
near 10,000 records/s. Most values in an export have one of a few plain shapes, and for
those the libraries' verdict can be computed column-wise with Polars, exactly:

- **International phones**: ``+`` then digits, with spaces, dots, hyphens or brackets
  between them (``+44 20 7946 0018``, ``+1 (212) 555-0123``), no extension. phonenumbers
  keeps the digits, takes the first one to three of them that form a country code, and
  keeps the rest as the national number unless it starts with the region's national prefix.
  Such a number is valid when the first region of its country code claims it (that region
  has no leading-digit rule, or one the number matches) and one of that region's number
  types accepts it (the type's possible lengths and pattern). All of it is read from
  libphonenumber's own metadata, once per country code seen. The E.164 form is ``+``, the
  country code and the national number. Left to the library: national numbers that start
  with 0 or with something the region's national-prefix rule would strip, non-geographic
  codes, patterns Polars' regex engine does not take, and Mexico (the job drops the mobile
  ``1`` Mexico retired).
- **North American phones without a country code** (``(212) 555-0123``, ``212.555.0123``,
  ``1 212 555 0123``) when the default region is the US: the same rule with country code 1.
  Canadian and Caribbean numbers resolve to other regions and go to the library.
- **Emails**: ASCII addresses of the common shape (letters, digits, ``._%+-`` in the local
  part; hostname labels; an alphabetic top-level domain; within the length limits; no
  special-use domain, no ``--`` that IDNA would look at, no misspelt domain that the job
  rejects). email-validator keeps the local part and lower-cases the domain, and so does the
  fast path.

``fast_*`` return, for each value, the normalised value when the fast path accepts it and
null otherwise ("ask the library"); they never reject. tests/test_fastpath.py checks that
every value they accept gets the same answer from the library.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Final

import phonenumbers
import polars as pl
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from phonenumbers import PhoneMetadata, PhoneNumberDesc

from customer_import.transform.normalise import DOMAIN_TYPOS, DOUBLED_TLD, TLD_TYPO

#: phonenumbers' order; mobile is added unless its pattern is the fixed-line one, as there.
_TYPES: Final = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
    "pager", "uan", "voicemail", "fixed_line",
)  # fmt: skip
_INTERNATIONAL: Final = r"^\+[1-9][0-9 .()-]*[0-9]$"
_SEPARATORS: Final = r"[ .()-]"
_NANP_DOMESTIC: Final = r"^(?:1[ .-])?\(?([2-9]\d{2})\)?[ .-]?(\d{3})[ .-]?(\d{4})$"
_NON_GEOGRAPHIC: Final = "001"
_MEXICO: Final = 52

_LOCAL: Final = r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL_SHAPE: Final = rf"^{_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$"
#: email-validator refuses a domain that is, or ends in, a special-use name.
_SPECIAL_USE: Final = rf"(?:^|\.)(?:{'|'.join(map(re.escape, SPECIAL_USE_DOMAIN_NAMES))})$"
#: ``_SPECIAL_USE`` and the endings ``normalise.misspelt_domain`` looks for, in one pattern.
_REFUSED_ENDING: Final = f"{_SPECIAL_USE}|{TLD_TYPO}|{DOUBLED_TLD}"


def fast_phones(values: pl.Series, default_region: str | None) -> pl.Series:
    """E.164 for plain-shaped valid numbers; null where the library must decide."""
    candidates = _code_and_national(values.to_frame("value").with_row_index("i"), default_region)
    result = pl.repeat(None, len(values), dtype=pl.String, eager=True).alias(values.name)
    for (code,), group in candidates.partition_by("code", as_dict=True).items():
        rule = _country_rule(int(str(code)))
        if rule is not None:
            valid = group.filter(rule)
            result.scatter(valid["i"], "+" + valid["code"] + valid["national"])
    return result


def _code_and_national(frame: pl.DataFrame, default_region: str | None) -> pl.DataFrame:
    """``i``, country code and national number as phonenumbers splits the values of a fast
    shape (the others are left out). In stages, so that each regex runs once a value."""
    value = pl.col("value")
    digits = pl.col("digits")
    frame = frame.select(
        "i",
        value.str.replace_all(_SEPARATORS, "").alias("bare"),
        value.str.contains(_INTERNATIONAL).alias("international"),
        value.str.contains(_NANP_DOMESTIC).alias("domestic"),
    )
    # The domestic shape leaves 10 digits, or 11 with the leading 1, once separators are gone.
    ten = pl.when(pl.col("domestic")).then(pl.col("bare").str.slice(-10))
    digits_after_plus = pl.col("bare").str.slice(1)
    frame = frame.select("i", "international", digits_after_plus.alias("digits"), ten.alias("ten"))
    known: pl.Expr = pl.lit(None, dtype=pl.String)
    for length in (3, 2, 1):  # codes are prefix-free; the shortest known prefix is checked last
        prefix = digits.str.slice(0, length)
        known = pl.when(prefix.is_in(_country_codes(length))).then(prefix).otherwise(known)
    frame = frame.with_columns(known.alias("known"))
    international, known_code = pl.col("international"), pl.col("known")
    domestic = pl.col("ten").is_not_null() & (default_region == "US")
    code = pl.when(international).then(known_code).when(domestic).then(pl.lit("1"))
    national = (
        pl.when(international)
        .then(digits.str.slice(known_code.str.len_bytes()))
        .when(domestic)
        .then(pl.col("ten"))
    )
    return frame.select("i", code.alias("code"), national.alias("national")).drop_nulls("code")


@cache
def _country_codes(length: int) -> list[str]:
    return [str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE if len(str(c)) == length]


@cache
def _country_rule(country_code: int) -> pl.Expr | None:
    """Validity of the ``national`` column for a country code; None leaves it to the library."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if country_code == _MEXICO or not regions or regions[0] == _NON_GEOGRAPHIC:
        return None
    metadata = PhoneMetadata.metadata_for_region(regions[0])
    if metadata is None or metadata.country_code != country_code:
        return None
    rule = _valid_national(pl.col("national"), metadata)
    try:  # libphonenumber's patterns are Java regexes: skip any Polars' engine does not take
        pl.DataFrame({"national": ["1"]}).select(rule)
    except pl.exceptions.PolarsError:
        return None
    return rule


def _valid_national(number: pl.Expr, metadata: PhoneMetadata) -> pl.Expr:
    """True where a national number, kept as written, belongs to ``metadata``'s region and one
    of its number types accepts it (phonenumbers' ``_number_type_helper``)."""
    general = _matches(number, metadata.general_desc)
    types = [_matches(number, getattr(metadata, name)) for name in _TYPES]
    if not metadata.same_mobile_and_fixed_line_pattern:
        types.append(_matches(number, metadata.mobile))
    usable = [t for t in types if t is not None]
    if general is None or not usable:
        return pl.lit(False)
    kept = ~number.str.starts_with("0")  # no Italian leading zero to carry over
    if metadata.national_prefix_for_parsing:  # nothing phonenumbers would strip as a prefix
        kept &= ~number.str.contains(f"^(?:{metadata.national_prefix_for_parsing})")
    if metadata.leading_digits is not None:  # the region claims numbers by how they start
        kept &= number.str.contains(f"^(?:{metadata.leading_digits})")
    return kept & general & pl.any_horizontal(usable)


def _matches(number: pl.Expr, desc: PhoneNumberDesc | None) -> pl.Expr | None:
    """phonenumbers' ``_is_number_matching_desc`` as an expression (None: never matches)."""
    if desc is None or not desc.national_number_pattern:
        return None
    matched = number.str.contains(f"^(?:{desc.national_number_pattern})$")
    if desc.possible_length:
        return number.str.len_bytes().is_in(list(desc.possible_length)) & matched
    return matched


def fast_emails(values: pl.Series) -> pl.Series:
    """The normalised address for common-shape ASCII emails; null where the library must decide.

    In stages, so that the domain is cut and lower-cased once a value, and one regex looks
    for every ending the library refuses or the job rejects."""
    value, domain = pl.col("v"), pl.col("domain")
    at = value.str.find("@", literal=True)  # the shape allows exactly one, and ASCII only
    frame = values.to_frame("v").with_columns(at.alias("at"))
    frame = frame.with_columns(value.str.slice(pl.col("at") + 1).str.to_lowercase().alias("domain"))
    accepted = (
        value.str.contains(_EMAIL_SHAPE)
        & (value.str.len_bytes() <= 254)
        & (pl.col("at") <= 64)
        & ~domain.str.contains("--", literal=True)
        & ~domain.str.contains(_REFUSED_ENDING)
        & ~domain.is_in(list(DOMAIN_TYPOS))  # judge_email rejects these, naming the likely domain
    )
    local = value.str.slice(0, pl.col("at"))
    return frame.select(
        pl.when(accepted).then(pl.concat_str([local, pl.lit("@"), domain])).alias(values.name)
    ).to_series()
