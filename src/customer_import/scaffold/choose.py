"""Which column fills which target field: by name (``by_name``) or, in a file without a header,
by values (``by_values``); then what every file needs: the phones' region, the words of the
boolean columns, the secrets kept out, and a word on any required field still missing."""

from __future__ import annotations

from typing import Final

from customer_import.scaffold import by_name, by_values, regions
from customer_import.scaffold.booleans import MIN_UNDERSTOOD, vocabulary
from customer_import.scaffold.draft import Choices, Draft
from customer_import.scaffold.sample import Sample
from customer_import.schema import BOOLEAN_FIELDS


def draft(sample: Sample) -> Draft:
    """The mapping for the sampled export, every choice explained."""
    choices = Choices(sample)
    steps = by_name.STEPS if sample.has_header else by_values.STEPS
    for step in (*steps, phone_region, booleans, secrets, first_name):
        step(choices)
    return choices.draft()


def phone_region(c: Choices) -> None:
    phone = c.fields.get("phoneNumber")
    if phone is None:
        return
    country = c.country
    found = regions.evidence(
        phone.column.values,
        country.values if country else (),
        country.shown if country else None,
        c.languages,
    )
    choice = regions.choose_region(phone.column.values, found)
    if country is not None and found.countries:
        c.about[country] = "a country: not sent, but its values helped choose default_region"
    why = f'default_region = "{choice.region}": {choice.why[0]}'
    c.replace("phoneNumber", *phone.notes, why, *choice.why[1:], default_region=choice.region)


def booleans(c: Choices) -> None:
    for target in BOOLEAN_FIELDS:
        field = c.fields.get(target)
        if field is not None:
            _boolean(c, target, bool(field.options.get("invert")))


def _boolean(c: Choices, target: str, invert: bool) -> None:
    field = c.fields[target]
    words = vocabulary(field.column.values, invert)
    if words.understood < MIN_UNDERSTOOD:
        del c.fields[target]
        c.free.append(field.column)
        c.about[field.column] = f"not a yes/no column for {target}: {words.describe()}"
        return
    notes = [*field.notes, words.describe() if words.seen else "no values in the sample"]
    if words.unknown:
        listed = ", ".join(f'"{w}"' for w in words.unknown[:_SHOWN])
        notes.append(f"not understood: {listed}: a record holding one is rejected; add the word")
        notes.append("to true or false if it means one (the check below counts them)")
    options: dict[str, object] = {"true": list(words.true)} if words.true else {}
    if words.false:
        options["false"] = list(words.false)
    c.replace(target, *notes, **options)


_SHOWN: Final = 8


def secrets(c: Choices) -> None:
    for column in c.secrets:
        c.about[column] = "a secret: never mapped, and in drop_columns (kept out of rejects.csv)"


def first_name(c: Choices) -> None:
    if "firstName" not in c.fields:
        c.attention.append(
            "NO FIRST NAME: firstName is required and no column was recognised as one: map it "
            "(this file does not load until then)."
        )
