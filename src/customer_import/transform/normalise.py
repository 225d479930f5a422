"""Per-value judges for phones and emails, wrapped for Polars columns.

phonenumbers and email-validator are the field's standards and stay the judge of every
value; they cost tens of microseconds a call, so each distinct value is judged once and
remembered (exports repeat area codes, placeholder values and shared inboxes), and the one
complaint email-validator has about the commonest bad address (``ada@mail``) is asked once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Final

import phonenumbers
import polars as pl
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

#: (normalised value, None) when good, (None, reason) when not. A reason never holds "; ":
#: that separates the reasons of a record's fields.
Verdict = tuple[str | None, str | None]

# Per judge. Only values the fast path leaves reach it (placeholders, shared inboxes, odd shapes):
# ten thousand of them cover the repeats, and keep memory flat however long the export is.
_CACHE_LIMIT: Final = 10_000
# Excel's scientific notation and nothing else: one digit, an optional decimal part (a comma in
# locales that write one), E, the exponent's sign (Excel always writes it) and one or two exponent
# digits: "7.02255E+12", "7,02255E+12", "6E+11". Ids such as "3e8", "12E45" or QuickBooks'
# "8000177E-1605385774" are ordinary ids.
EXCEL_NUMBER: Final = re.compile(r"^\d([.,]\d+)?[eE][+-]\d{1,2}$")
_INTERNATIONAL = re.compile(r"^'?\s*(\+|00[1-9])")  # written with a country code
EXCEL_HINT: Final = (
    "is in Excel's scientific notation: the file went through Excel, which rounds long numbers "
    "(several customers can collapse onto one value). Re-export without opening it in Excel, "
    "or format the column as Text"
)


def judge_phone(value: str, region: str | None) -> Verdict:
    """E.164 when phonenumbers finds a valid number; an extension is dropped."""
    if EXCEL_NUMBER.match(value):
        return None, f"{value!r} {EXCEL_HINT}"
    # A line break inside a quoted cell is layout, like any other space in a phone number.
    text = " ".join(value.split())
    try:
        number = _parse_phone(text, region)
    except phonenumbers.NumberParseException as exc:
        return None, f"{value!r} is not a phone number ({_parse_error_text(exc)})"
    if not phonenumbers.is_valid_number(number):
        local = region and not _INTERNATIONAL.match(text)
        where = f" (numbers without a country code are read as {region})" if local else ""
        return None, f"{value!r} is not a valid phone number{where}"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def _parse_phone(text: str, region: str | None) -> phonenumbers.PhoneNumber:
    """Parsed for ``region``; '00' + country code is read as international when that is valid.

    '00' is the international call prefix almost everywhere but North America (011), so
    '001-212-555-0123' in a US file is +1 212 555 0123: no national number starts with 00
    there, and the alternative is only taken when it is a valid number.
    """
    number = _drop_mexican_mobile_prefix(phonenumbers.parse(text, region))
    if phonenumbers.is_valid_number(number) or not text.startswith("00"):
        return number
    try:
        international = _drop_mexican_mobile_prefix(phonenumbers.parse("+" + text[2:], None))
    except phonenumbers.NumberParseException:
        return number
    return international if phonenumbers.is_valid_number(international) else number


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
    """Syntax only (never a DNS lookup); the domain is lower-cased by email-validator.

    A syntactically valid address whose domain is a known misspelling is rejected too, naming
    the likely domain: it is never corrected, since only the customer knows their address.
    """
    complaint = _dotless_domain_complaint(value)
    if complaint is not None:
        return None, f"{value!r} is not a valid email address ({complaint})"
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"{value!r} is not a valid email address ({str(exc).rstrip('.')})"
    domain = result.ascii_domain.lower()
    likely = likely_domain(domain)
    if likely is not None:
        return None, (
            f"{value!r} has a misspelt domain: did you mean '{likely}' instead of '{domain}'? "
            "Correct it in the export"
        )
    return result.normalized, None


#: ASCII letters, digits and ``._%+-`` before the @-sign, one hostname label after it.
_DOTLESS_ADDRESS: Final = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)


def _dotless_domain_complaint(value: str) -> str | None:
    """email-validator's complaint about an address of the common shape but for a domain of
    one label (``ada@mail``), as it gives it; None for any other value, which it judges.

    Its one complaint about such an address is the missing period, in the same words for all
    (tests/test_fastpath.py checks): those words are asked of it once, not for each address
    at some 20 µs. A special-use name (``ada@localhost``) and a ``--`` (which IDNA looks at)
    are left to it, whatever the order of its checks."""
    if not _DOTLESS_ADDRESS.fullmatch(value) or "--" in value or value.index("@") > 64:
        return None
    if value.rpartition("@")[2].lower() in SPECIAL_USE_DOMAIN_NAMES:
        return None
    return _dotless_complaint()


@cache
def _dotless_complaint() -> str | None:
    """email-validator's words for a domain without a period, as a reason gives them."""
    try:
        validate_email("ada@mail", check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc).rstrip(".")
    return None  # a version that takes such addresses: it judges each


#: Misspellings of the biggest mailbox providers' domains, seen in real exports. Nobody receives
#: mail there; the list is kept short and exact so that no real domain is ever caught.
DOMAIN_TYPOS: Final = {
    "gmial.com": "gmail.com",
    "gmai.com": "gmail.com",
    "gmal.com": "gmail.com",
    "gamil.com": "gmail.com",
    "gnail.com": "gmail.com",
    "gmaill.com": "gmail.com",
    "hotmial.com": "hotmail.com",
    "hotmai.com": "hotmail.com",
    "hotmal.com": "hotmail.com",
    "hotmil.com": "hotmail.com",
    "yaho.com": "yahoo.com",
    "yahooo.com": "yahoo.com",
    "yhoo.com": "yahoo.com",
    "outlok.com": "outlook.com",
    "outloo.com": "outlook.com",
    "iclod.com": "icloud.com",
}
#: Top-level domains that do not exist and are one slip away from .com.
TLD_TYPOS: Final = {"con": "com", "cmo": "com", "ocm": "com"}
#: Endings typed twice ("gmail.com.com"): no mailbox provider uses such a domain. No
#: back-reference, so Polars (Rust regex) can use the same pattern.
DOUBLED_TLD: Final = r"\.(?:com\.com|net\.net|org\.org)$"
_DOUBLED_TLD: Final = re.compile(DOUBLED_TLD)
TLD_TYPO: Final = rf"\.(?:{'|'.join(TLD_TYPOS)})$"


def likely_domain(domain: str) -> str | None:
    """The domain probably meant, when ``domain`` (lower case) is a known misspelling."""
    if _DOUBLED_TLD.search(domain):
        domain = domain.rsplit(".", 1)[0]
        return DOMAIN_TYPOS.get(domain, domain)
    if domain in DOMAIN_TYPOS:
        return DOMAIN_TYPOS[domain]
    stem, dot, tld = domain.rpartition(".")
    if dot and tld in TLD_TYPOS:
        fixed = f"{stem}.{TLD_TYPOS[tld]}"
        return DOMAIN_TYPOS.get(fixed, fixed)
    return None


def misspelt_domain(domain: pl.Expr) -> pl.Expr:
    """Vectorised: true where a lower-case domain is one ``likely_domain`` knows as misspelt.

    A fast path that accepts emails without calling ``judge_email`` must leave these to it.
    """
    return (
        domain.is_in(list(DOMAIN_TYPOS))
        | domain.str.contains(TLD_TYPO)
        | domain.str.contains(DOUBLED_TLD)
    )


def undecided(quick: pl.Series, values: pl.Series) -> pl.Series:
    """Where a fast path left a value (not null) without an answer."""
    frame = pl.DataFrame({"quick": quick, "value": values})
    return frame.select((pl.col("quick").is_null() & pl.col("value").is_not_null()).arg_true())[
        "quick"
    ]


class CachedJudge:
    """Applies a per-value judge to a text column, once per distinct value.

    ``fast`` (optional, vectorised) answers for the values it clearly accepts, returning
    null for the rest; only those go to ``judge``, whose verdicts are remembered.
    """

    def __init__(
        self,
        judge: Callable[[str], Verdict],
        fast: Callable[[pl.Series], pl.Series] | None = None,
    ) -> None:
        self._judge = judge
        self._fast = fast
        self._cache: dict[str, Verdict] = {}

    def apply(self, column: pl.Series) -> tuple[pl.Series, pl.Series]:
        """(normalised, reason) Series aligned with ``column``; nulls stay null in both.

        Only the values the fast path left are looked up, by position: the rest of the column
        is never hashed."""
        quick = (
            self._fast(column)
            if self._fast is not None
            else pl.repeat(None, len(column), dtype=pl.String, eager=True)
        )
        reasons = pl.repeat(None, len(column), dtype=pl.String, eager=True)
        pending = undecided(quick, column)
        if pending.is_empty():
            return quick, reasons
        verdicts = [self._verdict(v) for v in column.gather(pending).to_list()]
        good = pl.Series([v[0] for v in verdicts], dtype=pl.String)
        bad = pl.Series([v[1] for v in verdicts], dtype=pl.String)
        return quick.cast(pl.String).scatter(pending, good), reasons.scatter(pending, bad)

    def _verdict(self, value: str) -> Verdict:
        verdict = self._cache.get(value)
        if verdict is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            verdict = self._cache[value] = self._judge(value)
        return verdict
