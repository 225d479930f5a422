"""Vectorised answers for clearly valid phones and emails; the libraries judge the rest.

phonenumbers and email-validator cost tens of microseconds a value, which caps a dry run
near 10,000 records/s. Most values in an export have one of a few plain shapes, and for
those the libraries' verdict can be computed column-wise with Polars, exactly:

- **Phones**: a 10-digit North American number written in a plain shape (``(212) 555-0123``,
  ``212.555.0123``, ``+1-212-555-0123``, ``1 212 555 0123``), with no extension. It is valid
  exactly when libphonenumber's own US patterns (read from its metadata at start-up) accept
  it: the US is the first region of country code 1 and has no leading-digit rule, so such a
  number resolves to the US and ``is_valid_number`` holds. Its E.164 form is ``+1`` and the
  ten digits. Canadian and Caribbean numbers, and everything else, go to the library.
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

from functools import cache
from typing import Final

import phonenumbers
import polars as pl
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from phonenumbers import PhoneMetadata

from customer_import.normalise import misspelt_domain

_TYPES: Final = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
    "pager", "uan", "voicemail", "fixed_line", "mobile",
)  # fmt: skip
_NANP_SHAPE: Final = r"^(?:\+1[\s.-]?|1[\s.-])?\(?([2-9]\d{2})\)?[\s.-]?(\d{3})[\s.-]?(\d{4})$"
_NANP_INTERNATIONAL: Final = r"^\+1[\s.-]?\(?[2-9]"

_LOCAL: Final = r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL_SHAPE: Final = rf"^{_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$"


@cache
def _us_patterns() -> tuple[str, str]:
    """(general pattern, any-type pattern) of US national numbers, from libphonenumber."""
    metadata = PhoneMetadata.metadata_for_region("US")
    if metadata is None or metadata.leading_digits is not None or metadata.general_desc is None:
        raise RuntimeError("phonenumbers' US metadata changed shape: the phone fast path is unsafe")
    if phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1][0] != "US":
        raise RuntimeError("phonenumbers no longer lists the US first for +1")
    descs = [getattr(metadata, name) for name in _TYPES]
    patterns = [d.national_number_pattern for d in descs if _usable(d)]
    general = metadata.general_desc.national_number_pattern
    return rf"^(?:{general})$", rf"^(?:{'|'.join(patterns)})$"


def _usable(desc: phonenumbers.PhoneNumberDesc | None) -> bool:
    """A type description that can match a 10-digit number."""
    if desc is None or not desc.national_number_pattern:
        return False
    return not desc.possible_length or 10 in desc.possible_length


def fast_phones(values: pl.Series, default_region: str | None) -> pl.Series:
    """E.164 for plain-shaped valid NANP numbers; null where the library must decide."""
    general, any_type = _us_patterns()
    frame = values.to_frame("v").select(
        pl.col("v").str.extract_groups(_NANP_SHAPE).struct.field("1", "2", "3"),
        plain_us=pl.col("v").str.contains(_NANP_SHAPE),
        international=pl.col("v").str.contains(_NANP_INTERNATIONAL),
    )
    national = pl.concat_str("1", "2", "3")
    region_ok = pl.col("international") | pl.lit(default_region == "US")
    accepted = (
        pl.col("plain_us")
        & region_ok
        & national.str.contains(general)
        & national.str.contains(any_type)
    )
    return frame.select(
        pl.when(accepted).then(pl.lit("+1") + national).alias(values.name)
    ).to_series()


def fast_emails(values: pl.Series) -> pl.Series:
    """The normalised address for common-shape ASCII emails; null where the library must decide."""
    value = pl.col("v")
    local, domain = (
        value.str.extract(r"^(.*)@", 1),
        value.str.extract(r"@(.*)$", 1).str.to_lowercase(),
    )
    last_label = domain.str.extract(r"([^.]+)$", 1)
    accepted = (
        value.str.contains(_EMAIL_SHAPE)
        & (value.str.len_bytes() <= 254)
        & (local.str.len_bytes() <= 64)
        & ~domain.str.contains("--", literal=True)
        & ~last_label.is_in(list(SPECIAL_USE_DOMAIN_NAMES))
        & ~misspelt_domain(domain)  # judge_email rejects these, naming the likely domain
    )
    return (
        values.to_frame("v")
        .select(pl.when(accepted).then(local + pl.lit("@") + domain).alias(values.name))
        .to_series()
    )
