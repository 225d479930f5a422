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
  libphonenumber's own metadata, once, into three regexes over the E.164 form (``+``, the
  country code and the national number) with an alternative a country code: the national
  numbers refused, the general description, and the number types. Country codes are
  prefix-free, so a number only ever meets its own code's alternative, and a batch takes
  three passes whatever its countries. The regexes make no length check: of each pattern,
  the alternatives that match possible lengths only are kept. Left to the library: national
  numbers that start with 0, with something the region's national-prefix rule would strip,
  or with digits the region does not claim; the few matched by an alternative that also
  matches impossible lengths; non-geographic codes, patterns Polars' regex engine does not
  take, and Mexico (the job drops the mobile ``1`` Mexico retired).
- **North American phones without a country code** (``(212) 555-0123``, ``212.555.0123``,
  ``1 212 555 0123``) when the default region is the US: ``+1`` and their ten digits, then
  the same rule. Canadian and Caribbean numbers resolve to other regions and go to the library.
- **Emails**: ASCII addresses of the common shape (letters, digits, ``._%+-`` in the local
  part; hostname labels; an alphabetic top-level domain; within the length limits; no
  special-use domain, no ``--`` that IDNA would look at, no misspelt domain that the job
  rejects). email-validator keeps the local part and lower-cases the domain, and so does the
  fast path: in one pass for the many addresses whose domain is in lower case already (they
  are their own normalised form), in a second for the rest.

``fast_*`` return, for each value, the normalised value when the fast path accepts it and
null otherwise ("ask the library"); they never reject. tests/test_fastpath.py checks that
every value they accept gets the same answer from the library.
"""

from __future__ import annotations

import importlib
import itertools
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from typing import Final

import polars as pl
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberDesc

from customer_import.transform.normalise import DOMAIN_TYPOS, DOUBLED_TLD, TLD_TYPO, undecided

#: phonenumbers' order; mobile is added unless its pattern is the fixed-line one, as there.
_TYPES: Final = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
    "pager", "uan", "voicemail", "fixed_line",
)  # fmt: skip
_INTERNATIONAL: Final = r"\+[1-9][0-9 .()-]*[0-9]"
_NANP_DOMESTIC: Final = r"(?:1[ .-])?\(?[2-9][0-9]{2}\)?[ .-]?[0-9]{3}[ .-]?[0-9]{4}"
_SEPARATORS: Final = {" ": "", ".": "", "(": "", ")": "", "-": ""}
_NON_GEOGRAPHIC: Final = "001"
_MEXICO: Final = 52
#: How many alternatives a number type's pattern may be split into.
_MOST_ALTERNATIVES: Final = 200
#: Python's regex parser (sre_parse, which warns on import): it measures a pattern's lengths.
_PARSER: Final = importlib.import_module("re._parser")

_LOCAL: Final = r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL_SHAPE: Final = rf"^{_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$"
#: A lower-case label with no ``--`` (which IDNA would look at), of at most 63 characters
#: (and any of up to 32).
_LOWER_CASE_LABEL: Final = r"[a-z0-9](?:-?[a-z0-9]){0,31}"
_LOWER_CASE_EMAIL: Final = rf"^{_LOCAL}@(?:{_LOWER_CASE_LABEL}\.)+[a-z]{{2,63}}$"
_SPECIAL_USE_NAMES: Final = "|".join(map(re.escape, SPECIAL_USE_DOMAIN_NAMES))
#: email-validator refuses a domain that is, or ends in, a special-use name.
_SPECIAL_USE: Final = rf"(?:^|\.)(?:{_SPECIAL_USE_NAMES})$"
_TYPOS: Final = "|".join(map(re.escape, DOMAIN_TYPOS))
#: A lower-case domain that the library refuses (special-use, or ``--`` that IDNA would look
#: at) or that the job rejects as misspelt (``normalise.misspelt_domain``), in one pattern.
_REFUSED_DOMAIN: Final = f"--|{_SPECIAL_USE}|{TLD_TYPO}|{DOUBLED_TLD}|^(?:{_TYPOS})$"
#: The same for a whole address with a lower-case domain, and the misspelt domains too.
_REFUSED_ADDRESS: Final = (
    rf"[@.](?:{_SPECIAL_USE_NAMES})$|{TLD_TYPO}|{DOUBLED_TLD}"
    rf"|@(?:{_TYPOS})$"
)


def fast_phones(values: pl.Series, default_region: str | None) -> pl.Series:
    """E.164 for plain-shaped valid numbers; null where the library must decide.

    In stages: the separators of fast-shaped values go in one pass, domestic numbers get
    their ``+1``, and three regexes that each cover every country code of the batch judge the
    result (built for the codes present only: all 205 cost a quarter of a second to build and
    compile, a fixed cost every run would pay)."""
    value, e164 = pl.col("v"), pl.col("e164")
    nanp = default_region == "US"
    shape = f"^(?:{_INTERNATIONAL}|{_NANP_DOMESTIC})$" if nanp else f"^{_INTERNATIONAL}$"
    bare = value.str.replace_many(_SEPARATORS)
    frame = values.to_frame("v").select(pl.when(value.str.contains(shape)).then(bare).alias("e164"))
    if nanp:  # a domestic shape leaves 10 digits, or 11 with the leading 1
        domestic = pl.lit("+1") + e164.str.tail(10)
        frame = frame.select(pl.when(e164.str.starts_with("+")).then(e164).otherwise(domestic))
    patterns = _phone_patterns(_codes_in(frame.to_series()))
    if patterns is None:
        return pl.repeat(None, len(values), dtype=pl.String, eager=True).alias(values.name)
    refused, general, types = patterns
    valid = ~e164.str.contains(refused) & e164.str.contains(general) & e164.str.contains(types)
    return frame.select(pl.when(valid).then(e164).alias(values.name)).to_series()


def _codes_in(e164: pl.Series) -> frozenset[int]:
    """The country codes the numbers (``+`` and digits) start with: codes are prefix-free,
    so each number has one, if any. Read off the distinct first three digits (a few hundred)."""
    starts = e164.drop_nulls().str.slice(1, 3).unique().to_list()
    return frozenset(
        int(start[:length])
        for start in starts
        for length in (1, 2, 3)
        if len(start) >= length
        and start[:length].isdigit()
        and int(start[:length]) in COUNTRY_CODE_TO_REGION_CODE
    )


@lru_cache(maxsize=256)
def _phone_patterns(codes: frozenset[int]) -> tuple[str, str, str] | None:
    """Regexes over ``+``, country code and national number, an alternative a country code of
    ``codes``: national numbers the library might read otherwise (``refused``), the general
    description, and the number types. Country codes are prefix-free, so a number can only
    match its own code's alternative; the numbers of a code left out match no ``general``.
    None when no code of ``codes`` has a fast rule."""
    countries = [p for code in sorted(codes) if (p := _country(code))]
    return _joined(countries) if countries else None


def _joined(countries: list[tuple[str, str, str]]) -> tuple[str, str, str]:
    refused, general, types = ("|".join(column) for column in zip(*countries, strict=True))
    return rf"^\+(?:{refused})", rf"^\+(?:{general})$", rf"^\+(?:{types})$"


def _polars_takes(*patterns: str) -> bool:
    """Whether Polars' regex engine compiles every pattern: libphonenumber's are Java's."""
    try:
        pl.DataFrame({"n": ["+1"]}).select(
            pl.col("n").str.contains(p).alias(str(i)) for i, p in enumerate(patterns)
        )
    except pl.exceptions.PolarsError:
        return False
    return True


@cache
def _country(code: int) -> tuple[str, str, str] | None:
    """``_phone_patterns``' alternatives for a country code; None leaves it to the library
    (also when Polars' regex engine does not take them: libphonenumber's patterns are Java's).

    Such a number is valid when the first region of its code claims it and one of that
    region's number types accepts it (phonenumbers' ``_number_type_helper``). Refused: a
    national number that starts with 0 (an Italian leading zero to carry over), with what
    phonenumbers would strip as a national prefix, or that the region does not claim. The
    patterns are libphonenumber's, cut to what needs no length check (``_within_lengths``)."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if code == _MEXICO or not regions or regions[0] == _NON_GEOGRAPHIC:
        return None
    metadata = PhoneMetadata.metadata_for_region(regions[0])
    if metadata is None or metadata.country_code != code:
        return None
    general = _within_lengths(metadata.general_desc)
    types = [_within_lengths(getattr(metadata, name)) for name in _TYPES]
    if not metadata.same_mobile_and_fixed_line_pattern:
        types.append(_within_lengths(metadata.mobile))
    usable = [t for t in types if t is not None]
    refused = ["0"]  # an Italian leading zero to carry over
    if metadata.national_prefix_for_parsing:
        refused.append(metadata.national_prefix_for_parsing)
    if metadata.leading_digits:  # the region claims numbers by how they start
        unclaimed = _unclaimed(metadata.leading_digits)
        if unclaimed is None:
            return None
        refused.append(unclaimed)
    if general is None or not usable:
        return None
    patterns = (
        f"{code}(?:{'|'.join(refused)})",
        f"{code}(?:{general})",
        f"{code}(?:{'|'.join(usable)})",
    )
    if any("^" in p.replace("[^", "[") for p in patterns):
        return None  # the start of the national number there, of the whole text here
    refused_pattern, general_pattern, types_pattern = (_ascii_digits(p) for p in patterns)
    if not _polars_takes(refused_pattern, general_pattern, types_pattern):
        return None
    return refused_pattern, general_pattern, types_pattern


def _unclaimed(leading_digits: str) -> str | None:
    """The national numbers that ``leading_digits`` (a region's claim, matched at the start
    as phonenumbers does) does not match, as a pattern for their start; None if too long.

    A claim of digits, classes, groups and repeats looks at no more of a number than its
    longest match: the starts of that length it does not match are listed, and shorter
    numbers refused."""
    if not re.fullmatch(r"(?:\\d|[0-9\[\]|()?:{},-])+", leading_digits):
        return None
    longest = _PARSER.parse(leading_digits).getwidth()[1]
    if not 1 <= longest <= 3:
        return None
    claimed = re.compile(leading_digits)
    starts = ("".join(s) for s in itertools.product("0123456789", repeat=longest))
    return "|".join([*(s for s in starts if not claimed.match(s)), f"[0-9]{{0,{longest - 1}}}$"])


def _ascii_digits(pattern: str) -> str:
    """``pattern`` with ``[0-9]`` for ``\\d``: the same on the ASCII digits matched here, and a
    smaller automaton than Unicode's digits."""
    return pattern.replace(r"\d", "[0-9]")


def _within_lengths(desc: PhoneNumberDesc | None) -> str | None:
    """A pattern for the national numbers ``desc`` accepts (phonenumbers'
    ``_is_number_matching_desc``), with no length check left to make; None: none.

    Of the alternatives of ``desc``'s pattern, those whose every length is a possible length
    are kept, and those that also match other lengths are split at their first group
    (``(?:6[1-58]|970\\d)\\d{7}``: ``6[1-58]\\d{7}`` and ``970\\d\\d{7}``) until they are
    kept or cannot be split; what is left (a handful of lengthy numbers) is the library's."""
    if desc is None or not desc.national_number_pattern:
        return None
    pending, kept = _alternatives(desc.national_number_pattern), list[str]()
    lengths = set(desc.possible_length)
    while pending and len(kept) + len(pending) <= _MOST_ALTERNATIVES:
        alternative = pending.pop()
        if not lengths or _lengths_within(alternative, lengths):
            kept.append(alternative)
        else:
            pending += _split(alternative)
    return "|".join(reversed(kept)) or None


def _alternatives(pattern: str) -> list[str]:
    """``pattern`` cut at its top-level ``|`` (outside groups and classes)."""
    cuts = [-1, *(i for i, depth in _depths(pattern) if depth == 0 and pattern[i] == "|")]
    return [pattern[start + 1 : end] for start, end in itertools.pairwise([*cuts, len(pattern)])]


def _split(alternative: str) -> list[str]:
    """``alternative`` as one alternative per alternative of its first group (and one without
    the group if it is optional); none if there is no such group to split."""
    depths = list(_depths(alternative))
    opening = next((i for i, depth in depths if depth == 1 and alternative[i] == "("), None)
    closing = next((i for i, depth in depths if i > (opening or 0) and depth == 0), None)
    if opening is None or closing is None:
        return []
    inner = alternative[opening + 1 : closing].removeprefix("?:")
    before, after = alternative[:opening], alternative[closing + 1 :]
    optional = after.startswith("?") and not after.startswith("??")
    if inner.startswith("?") or (after[:1] in ("*", "+", "{", "?") and not optional):
        return []  # a lookaround or named group, or a repeat: kept whole (and so dropped)
    after = after.removeprefix("?") if optional else after
    pieces = _alternatives(inner) + ([""] if optional else [])
    return [before + piece + after for piece in pieces]


def _depths(pattern: str) -> Iterator[tuple[int, int]]:
    """(index, group depth after it) for each character of ``pattern`` that is outside a
    class and not escaped: where its ``|`` and brackets are."""
    depth, in_class, escaped = 0, False, False
    for i, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        else:
            depth += {"(": 1, ")": -1}.get(char, 0)
            yield i, depth


def _lengths_within(pattern: str, lengths: set[int]) -> bool:
    """Whether every length of text that ``pattern`` can match is one of ``lengths`` (False
    for what Python's parser does not take: such an alternative is left out)."""
    try:
        low, high = _PARSER.parse(pattern).getwidth()
    except re.error:
        return False
    return bool(high <= max(lengths) and set(range(low, high + 1)) <= lengths)


def fast_emails(values: pl.Series) -> pl.Series:
    """The normalised address for common-shape ASCII emails; null where the library must decide.

    Most addresses have a lower-case domain, and are their own normalised form: one pass
    settles them, and the rest (upper case in the domain, a label too long for that pass)
    take the one that lower-cases the domain."""
    quick = _lower_case_emails(values)
    rest = undecided(quick, values)
    if rest.is_empty():
        return quick
    return quick.scatter(rest, _any_case_emails(values.gather(rest)))


def _lower_case_emails(values: pl.Series) -> pl.Series:
    """``fast_emails`` for the addresses whose domain is in lower case already."""
    value = pl.col("v")
    accepted = (
        value.str.contains(_LOWER_CASE_EMAIL)
        & (value.str.len_bytes() <= 254)
        & (value.str.find("@", literal=True) <= 64)
        & ~value.str.contains(_REFUSED_ADDRESS)
    )
    return values.to_frame("v").select(pl.when(accepted).then(value).alias(values.name)).to_series()


def _any_case_emails(values: pl.Series) -> pl.Series:
    """``fast_emails`` for any case: the domain lower-cased, and checked as such. One select
    (Polars computes the domain once), as this sees few values and each pass has a cost."""
    value = pl.col("v")
    at = value.str.find("@", literal=True)  # the shape allows exactly one, and ASCII only
    domain = value.str.slice(at + 1).str.to_lowercase()
    accepted = (
        value.str.contains(_EMAIL_SHAPE)
        & (value.str.len_bytes() <= 254)
        & (at <= 64)
        & ~domain.str.contains(_REFUSED_DOMAIN)
    )
    normalised = pl.concat_str([value.str.slice(0, at), pl.lit("@"), domain])
    return (
        values.to_frame("v")
        .select(pl.when(accepted).then(normalised).alias(values.name))
        .to_series()
    )
