"""The mapping of a file with a header, from its column names.

The exact names of common exports first (``names.rank``); then, for an email or a phone column
only, a name with the right word in it ("Default Address Phone"); then, for an email column
only, values that are email addresses. An id is never taken from anything but its exact name:
without one, the email column is offered, commented out, and the user chooses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from customer_import.scaffold import names
from customer_import.scaffold.draft import Choices, Field, mostly, share
from customer_import.scaffold.sample import Column

NOTIFY_EMAIL: Final = "notificationOptions.notifyEmail"
NOTIFY_PHONE: Final = "notificationOptions.notifyPhone"
EMAIL_VALUE: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NO_ID: Final = (
    "NO ID COLUMN: no column of this export is named as a customer id. externalId is the key",
    "every upsert is matched on, and this file does not load until [mapping] has one: choose it.",
)
_EMAIL_AS_ID: Final = (
    "The email column is offered below, commented out. Use it only if every customer has an",
    "address, no two share one, and addresses never change: a changed address would make a",
    "second customer, and a record without one is rejected.",
)


def notifications(c: Choices) -> None:
    """First, so that "Accepts Email Marketing" is never taken for an email column."""
    for target, short in ((NOTIFY_EMAIL, "notifyEmail"), (NOTIFY_PHONE, "notifyPhone")):
        best = c.best((f"{short}+", f"{short}-"))
        if best is None:
            continue
        role, column = best
        if role.endswith("-"):
            why = f"{column.shown} is an opt-out: its yes means {short} = false: invert = true"
            c.take(target, column, why, *_repeats(c, column), invert=True)
        else:
            c.take(target, column, *_repeats(c, column))


def by_role(target: str) -> Callable[[Choices], None]:
    def step(c: Choices) -> None:
        best = c.best((target,))
        if best is not None:
            c.take(target, best[1], *_repeats(c, best[1]))

    return step


def full_name(c: Choices) -> None:
    """A whole-name column split in two, when first and last names have no column each."""
    first, last = c.fields.get("firstName"), c.fields.get("lastName")
    if first is not None and last is None and names.is_first_or_full(first.column.name):
        if share(first.column.values, lambda v: len(v.split()) > 1) >= 0.5:
            _split(c, first.column, f"{first.column.shown} holds whole names here")
        return
    if first is None:
        best = c.best(("fullName",))
        if best is not None:
            _split(c, best[1], f"{best[1].shown} holds whole names", keep_last=last is not None)


def _split(c: Choices, column: Column, lead: str, keep_last: bool = False) -> None:
    why = f'{lead}: part = "first" is all but the last word, part = "last" the last word'
    c.take("firstName", column, why, part="first")
    if not keep_last:
        c.take("lastName", column, part="last")


def email(c: Choices) -> None:
    best = c.best(("email",))
    if best is not None:
        c.take("email", best[1], *_repeats(c, best[1]))
        return
    loose = next((col for col in c.free if names.loosely("email", col.name)), None)
    if loose is not None:
        c.take("email", loose, f"{loose.shown}: an email column by the words of its name")
        return
    column = mostly(c.free, EMAIL_VALUE.match)
    if column is not None:
        c.take("email", column, f"{column.shown}: an email column by its values")


def phone(c: Choices) -> None:
    best = c.best(("phoneNumber",))
    if best is None:
        loose = next((col for col in c.free if names.loosely("phoneNumber", col.name)), None)
        if loose is not None:
            c.take("phoneNumber", loose, f"{loose.shown}: a phone column by the words of its name")
        return
    c.take("phoneNumber", best[1], *_repeats(c, best[1]))
    for other in c.free:
        if _is_phone(other) and other not in c.about:
            c.about[other] = f"a phone column too; phoneNumber takes {best[1].shown}"


def _is_phone(column: Column) -> bool:
    return names.rank("phoneNumber", column.name) is not None or names.loosely(
        "phoneNumber", column.name
    )


def country(c: Choices) -> None:
    best = c.best(("country",))
    loose = (x for x in c.free if names.loosely("country", x.name))
    column = best[1] if best is not None else next(loose, None)
    if column is not None:
        c.country = column
        c.about[column] = "a country: the API has no field for it"


def external_id(c: Choices) -> None:
    best = c.best(("externalId",))
    if best is not None:
        c.take("externalId", best[1], *_repeats(c, best[1]))


def offer_id(c: Choices) -> None:
    """No id column: say so at the top and offer the email column, commented out."""
    if "externalId" in c.fields:
        return
    c.attention.extend(_NO_ID)
    found = c.fields.get("email")
    if found is not None:
        c.attention.extend(_EMAIL_AS_ID)
        c.offered.append(Field("externalId", found.column, notes=("offered",)))


def _repeats(c: Choices, column: Column) -> tuple[str, ...]:
    """Among columns of one name, the fullest is mapped, and the comment says so."""
    times = c.sample.repeated.get(column.name)
    if not times:
        return ()
    same = [x for x in c.sample.columns if x.name == column.name]
    counts = ", ".join(f"{x.shown} {len(x.values)}" for x in same)
    for other in same:
        if other != column:
            c.about[other] = f'another "{column.name}"; {column.shown} is mapped'
    return (
        f'"{column.name}" appears {times} times in the header; values in the sample: {counts}:',
        f"{column.shown} is mapped, the fullest (the others are listed below)",
    )


STEPS: Final = (
    notifications,
    external_id,
    by_role("firstName"),
    by_role("lastName"),
    full_name,
    email,
    phone,
    by_role("active"),
    country,
    offer_id,
)
