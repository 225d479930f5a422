"""The mapping of a file without a header, from its values: columns are named by position.

Email addresses, phone numbers and countries say what they are. Names are guessed (the first
two columns of words: first name, last name) and the comment says it is a guess. The id is
not: the first column whose values are all different is offered, commented out.
"""

from __future__ import annotations

import re
from typing import Final

from customer_import.scaffold import regions
from customer_import.scaffold.booleans import MIN_UNDERSTOOD, vocabulary
from customer_import.scaffold.by_name import EMAIL_VALUE
from customer_import.scaffold.draft import MOSTLY, Choices, Field, mostly, share
from customer_import.scaffold.sample import Column

_PHONE: Final = re.compile(r"^'?[+(]?\d[\d\s().\-/]{5,}\d(\s*(ext\.?|x)\s*\d+)?$", re.IGNORECASE)
_WORDS: Final = re.compile(r"^[^\W\d_]+(?:[\s'.-]+[^\W\d_]+)*\.?$")
_NO_HEADER: Final = (
    "NO HEADER: the first line is a record, so columns are named by position (column = 3).",
    "Names are guessed from the values; check them against the file.",
)
_NO_ID: Final = (
    "NO ID COLUMN CHOSEN: externalId is the key every upsert is matched on, and a file without",
    "a header does not say which column holds it. This file does not load until you choose.",
)


def emails_phones_countries(c: Choices) -> None:
    column = mostly(c.free, EMAIL_VALUE.match)
    if column is not None:
        c.take("email", column, f"{column.shown} holds email addresses")
    column = mostly(c.free, _PHONE.match)
    if column is not None:
        c.take("phoneNumber", column, f"{column.shown} holds phone numbers")
    column = mostly(c.free, regions.country_code)
    if column is not None:
        c.country = column
        c.about[column] = "countries: the API has no field for them"


def yes_no(c: Choices) -> None:
    """Yes/no columns are named, not mapped: their values do not say which flag they are."""
    for column in c.free:
        words = vocabulary(column.values, invert=False)
        if column.values and not words.unknown and words.understood >= MIN_UNDERSTOOD:
            c.about[column] = "yes/no values: active, or a notification flag? Map it if it is"


def person_names(c: Choices) -> None:
    wordy = [x for x in c.free if x is not c.country and share(x.values, _WORDS.match) >= MOSTLY]
    wordy = [x for x in wordy if x not in c.about]
    if wordy:
        c.take("firstName", wordy[0], f"guessed: {wordy[0].shown} is the first column of words")
    if len(wordy) > 1:
        c.take("lastName", wordy[1], f"guessed: {wordy[1].shown} is the next column of words")


def offer_id(c: Choices) -> None:
    c.attention.extend(_NO_HEADER)
    c.attention.extend(_NO_ID)
    column = next((x for x in c.free if _could_be_id(x)), None)
    if column is not None:
        why = f"{column.shown}: its values are all different in the sample"
        c.attention.append(f"{column.shown} is offered below, commented out.")
        c.about[column] = "offered as externalId above"
        c.offered.append(Field("externalId", column, notes=(why,)))


def _could_be_id(column: Column) -> bool:
    values = column.values
    distinct = len(set(values)) == len(values)
    return bool(values) and distinct and all(len(v.split()) == 1 for v in values)


STEPS: Final = (emails_phones_countries, yes_no, person_names, offer_id)
