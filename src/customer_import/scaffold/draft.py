"""The mapping being drafted: which column fills which field, why, and what is left out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from customer_import.scaffold import names
from customer_import.scaffold.sample import Column, Sample
from customer_import.schema import REQUIRED_FIELDS, TARGET_FIELDS

#: A column is of a kind by its values when this share of them is.
MOSTLY: Final = 0.8


@dataclass(frozen=True, slots=True)
class Field:
    """One line of [mapping]."""

    target: str
    column: Column
    options: dict[str, object] = field(default_factory=dict)
    """Keys of the mapping's table besides ``column``: default_region, invert, true, false, part."""
    notes: tuple[str, ...] = ()
    """Why, as comment lines above it."""


@dataclass(frozen=True, slots=True)
class Draft:
    sample: Sample
    fields: tuple[Field, ...]
    offered: tuple[Field, ...]
    """Written commented out: choices left to the user."""
    attention: tuple[str, ...]
    """What must be decided before the first run, for the top of the file."""
    unmapped: tuple[tuple[Column, str], ...]
    """Every column no field reads (secrets included), with what is known of it."""
    secrets: tuple[Column, ...]
    """Columns never mapped, and never copied into rejects.csv (``drop_columns``)."""

    @property
    def ready(self) -> bool:
        """Whether the file loads as written: every required field is mapped."""
        return set(REQUIRED_FIELDS) <= {f.target for f in self.fields}

    def field(self, target: str) -> Field | None:
        return next((f for f in self.fields if f.target == target), None)


class Choices:
    """The draft while it is made: the columns still free, the fields taken so far."""

    def __init__(self, sample: Sample) -> None:
        self.sample = sample
        self.secrets = [c for c in sample.columns if names.is_secret(c.name)]
        self.free = [c for c in sample.columns if c not in self.secrets]
        self.fields: dict[str, Field] = {}
        self.offered: list[Field] = []
        self.attention: list[str] = []
        self.about: dict[Column, str] = {}
        """What is known of a column that may stay unmapped."""
        self.country: Column | None = None
        self.languages: list[str] = []
        """The languages of the names matched, for the phones' region."""

    def take(self, target: str, column: Column, *notes: str, **options: object) -> None:
        self.fields[target] = Field(target, column, dict(options), notes)
        if column in self.free:
            self.free.remove(column)
        language = names.language(column.name) if self.sample.has_header else None
        if language is not None:
            self.languages.append(language)

    def replace(self, target: str, *notes: str, **options: object) -> None:
        """The field with more options and notes."""
        old = self.fields[target]
        self.fields[target] = Field(target, old.column, {**old.options, **options}, notes)

    def best(self, roles: Sequence[str]) -> tuple[str, Column] | None:
        """The likeliest free column for any of the roles: a filled one, the earlier role, the
        better-ranked name, the fuller column, the earlier column, in that order."""
        found = [
            ((not column.values, i, rank, -len(column.values)), role, column)
            for i, role in enumerate(roles)
            for column in self.free
            if (rank := names.rank(role, column.name)) is not None
        ]
        if not found:
            return None
        _, role, column = min(found, key=lambda f: f[0])
        return role, column

    def draft(self) -> Draft:
        fields = tuple(self.fields[t] for t in TARGET_FIELDS if t in self.fields)
        used = {f.column for f in fields}
        unmapped = tuple((c, self.about.get(c, "")) for c in self.sample.columns if c not in used)
        return Draft(
            self.sample, fields, tuple(self.offered), tuple(self.attention), unmapped,
            tuple(self.secrets),
        )  # fmt: skip


def share(values: Sequence[str], test: Callable[[str], object]) -> float:
    """The share of the values that pass ``test`` (0 for none)."""
    return sum(bool(test(v)) for v in values) / len(values) if values else 0.0


def mostly(columns: Sequence[Column], test: Callable[[str], object]) -> Column | None:
    """The first column most of whose values pass ``test``."""
    return next((c for c in columns if share(c.values, test) >= MOSTLY), None)
