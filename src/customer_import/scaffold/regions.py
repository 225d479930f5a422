"""``default_region`` for the phone column, from what the file itself says.

The region only matters for numbers written without a country code, so it is chosen by them:
of the regions the file points to (the country codes of its international numbers, then the
values of a country column, then the language of its column names), the one in which most of
them are valid numbers (``transform.normalise.judge_phone``, the job's own judge). Only when the
file points nowhere, or nowhere they are valid, are the common regions tried.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import phonenumbers

from customer_import.scaffold import names, synonyms
from customer_import.transform.normalise import judge_phone

_INTERNATIONAL: Final = re.compile(r"^'?\s*(\+|00[1-9])")
#: Distinct numbers judged per region: plenty to tell regions apart, quick on any export.
_JUDGED: Final = 200
_COUNTRY_NAMES: Final = {
    names.normalise(name): region
    for region, spellings in synonyms.COUNTRY_NAMES.items()
    for name in spellings
}


@dataclass(frozen=True, slots=True)
class RegionChoice:
    region: str
    why: tuple[str, ...]
    """Comment lines: what the choice was made from."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the file says about where its customers are."""

    international: Counter[str]
    countries: Counter[str]
    country_column: str | None
    """As a comment shows it: '"Land"', 'column 6'."""
    languages: tuple[str, ...]

    def weight(self, region: str) -> int:
        """How many values of the file name the region: breaks ties between regions."""
        return self.international[region] + self.countries[region]

    def regions(self) -> list[str]:
        ranked = [r for r, _ in self.international.most_common()]
        ranked += [r for r, _ in self.countries.most_common()]
        ranked += [r for lang in self.languages for r in synonyms.LANGUAGE_REGIONS.get(lang, ())]
        return list(dict.fromkeys(ranked))


def country_code(value: str) -> str | None:
    """The ISO region a country cell names ("DE", "Deutschland", "UK"), or None."""
    text = value.strip().upper()
    if text == "UK":
        return "GB"
    if len(text) == 2 and text in phonenumbers.SUPPORTED_REGIONS:
        return text
    return _COUNTRY_NAMES.get(names.normalise(value))


def evidence(
    phones: Sequence[str],
    countries: Sequence[str],
    country_column: str | None,
    languages: Iterable[str],
) -> Evidence:
    regions = (_region_of(p) for p in phones if _INTERNATIONAL.match(p))
    return Evidence(
        international=Counter(r for r in regions if r is not None),
        countries=Counter(c for c in map(country_code, countries) if c is not None),
        country_column=country_column,
        languages=tuple(dict.fromkeys(languages)),
    )


def _region_of(phone: str) -> str | None:
    """The main region of a valid number's country code: +44 7911 is GB, though that range is
    Guernsey's; the job's own judge reads it (Mexico's old "+52 1" included)."""
    e164, _ = judge_phone(phone, None)
    code = phonenumbers.parse(e164).country_code if e164 is not None else None
    return phonenumbers.region_code_for_country_code(code) if code is not None else None


def choose_region(phones: Sequence[str], found: Evidence) -> RegionChoice:
    national = list(dict.fromkeys(p for p in phones if not _INTERNATIONAL.match(p)))[:_JUDGED]
    said = _what_the_file_says(found)
    candidates = found.regions()
    if not national:
        region = candidates[0] if candidates else "US"
        why = "no number in the sample lacks a country code, and only those need a region"
        return RegionChoice(region, (f"{why}: {region} is the commonest", *said))
    scores = {region: _valid_in(national, region) for region in candidates}
    if not scores or max(scores.values()) == 0:
        return _from_common_regions(national, said)
    # Of equals, the one the file names most often: numbers written with a country code are
    # often the foreign ones, so the country column may outweigh them.
    region = max(scores, key=lambda r: (scores[r], found.weight(r)))
    counted = f"{scores[region]} of {len(national)} numbers without a country code"
    return RegionChoice(region, (f"{counted} in the sample are valid {region} numbers", *said))


def _from_common_regions(national: list[str], said: tuple[str, ...]) -> RegionChoice:
    scores = {region: _valid_in(national, region) for region in synonyms.COMMON_REGIONS}
    region = max(scores, key=lambda r: scores[r])
    counted = f"{scores[region]} of {len(national)} numbers without a country code"
    lead = "nothing in the file points to where its numbers are from"
    if said:
        lead = "the numbers without a country code are valid in none of the regions it points to"
    guess = f"{counted} are valid {region} numbers, the most of the common regions: check it"
    return RegionChoice(region, (f"{lead}; {guess}", *said))


def _valid_in(numbers: list[str], region: str) -> int:
    return sum(judge_phone(number, region)[0] is not None for number in numbers)


def _what_the_file_says(found: Evidence) -> tuple[str, ...]:
    said = []
    if found.international:
        said.append(f"numbers with a country code: {_counts(found.international)}")
    if found.countries:
        said.append(f"the country column {found.country_column}: {_counts(found.countries)}")
    return tuple(said)


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{region} {n}" for region, n in counts.most_common(6))
