"""``true = [...]`` / ``false = [...]`` from the words a boolean column actually holds.

Two kinds of words. Answers ("ja", "oui", "Sí") say yes or no to the column's own question:
"ja" in a "Nicht anrufen" column is true, and ``invert`` turns it into notifyPhone = false.
States ("Active", "unsubscribed") describe the customer: a positive state is true in an opt-in
column and false in an opt-out one, so that ``invert`` gives the same answer either way
("unsubscribed" in an "Unsubscribed" column is true, inverted: notifyEmail = false).
Words the job already understands (``transform.validation``) need no entry; words that are
neither are listed for the user, never guessed: such a record is rejected until they say.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from customer_import.scaffold.names import normalise
from customer_import.transform.validation import FALSE_WORDS, TRUE_WORDS

_UNDERSTOOD: Final = frozenset((*TRUE_WORDS, *FALSE_WORDS))
_YES: Final = frozenset(
    normalise(w)
    for w in ("ja", "si", "sí", "oui", "sim", "x", "on", "checked", "wahr", "verdadero",
              "vrai", "vero", "verdadeiro")
)  # fmt: skip
_NO: Final = frozenset(
    normalise(w)
    for w in ("nein", "non", "não", "off", "unchecked", "falsch", "falso", "faux")
)  # fmt: skip
_POSITIVE: Final = frozenset(
    normalise(w)
    for w in ("active", "activo", "activa", "ativo", "ativa", "aktiv", "actif", "attivo",
              "attiva", "enabled", "aktiviert", "subscribed", "opted in", "opt-in",
              "suscrito", "suscrita", "abonné", "abonnée", "abonniert", "angemeldet",
              "iscritto", "iscritta", "inscrit", "inscrite", "inscrito", "consented", "granted",
              "allowed", "erlaubt")
)  # fmt: skip
_NEGATIVE: Final = frozenset(
    normalise(w)
    for w in ("inactive", "inactivo", "inactiva", "inativo", "inativa", "inaktiv", "inactif",
              "inattivo", "inattiva", "disabled", "deactivated", "deaktiviert", "unsubscribed",
              "opted out", "opt-out", "non-subscribed", "not subscribed", "desuscrito",
              "desuscrita", "dado de baja", "baja", "désabonné", "désabonnée", "désinscrit",
              "abgemeldet", "disiscritto", "descadastrado", "cleaned", "blocked", "gesperrt",
              "bloqueado", "bloqué", "bloccato", "archived", "closed", "cancelled")
)  # fmt: skip
#: Below this share of records with a word it knows, a column is no boolean at all
#: ("Estado" holding states of Mexico, "Status" holding free text).
MIN_UNDERSTOOD: Final = 0.5
_SHOWN: Final = 8


@dataclass(frozen=True, slots=True)
class Vocabulary:
    true: tuple[str, ...]
    false: tuple[str, ...]
    unknown: tuple[str, ...]
    """Words neither the job nor this module knows, commonest first."""
    seen: tuple[tuple[str, int], ...]
    """Every distinct word (first spelling) and how many records hold it, commonest first."""
    understood: float
    """The share of the records with a value whose word is understood."""

    def describe(self) -> str:
        words = ", ".join(f'"{w}" {n}' for w, n in self.seen[:_SHOWN])
        more = f" and {len(self.seen) - _SHOWN} more" if len(self.seen) > _SHOWN else ""
        return f"values seen: {words}{more}"


def vocabulary(values: Sequence[str], invert: bool) -> Vocabulary:
    """The words to add for a column (``invert``: an opt-out column), from its values."""
    seen = _distinct(values)
    kinds: dict[str, list[str]] = {"true": [], "false": [], "unknown": [], "known": []}
    for word, _ in seen:
        kinds[_kind(word, invert)].append(word)
    known = sum(n for word, n in seen if word not in kinds["unknown"])
    share = known / len(values) if values else 1.0
    return Vocabulary(
        tuple(kinds["true"]), tuple(kinds["false"]), tuple(kinds["unknown"]), tuple(seen), share
    )


def _distinct(values: Iterable[str]) -> list[tuple[str, int]]:
    """Words compared case-insensitively, as the job compares them; the first spelling kept."""
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for value in values:
        key = value.strip().lower()
        spelling.setdefault(key, value.strip())
        counts[key] += 1
    return [(spelling[key], n) for key, n in counts.most_common()]


def _kind(word: str, invert: bool) -> str:
    if word.lower() in _UNDERSTOOD:
        return "known"
    bare = normalise(word)
    if bare in _YES or bare in _NO:
        return "true" if bare in _YES else "false"
    if bare in _POSITIVE or bare in _NEGATIVE:
        return "true" if (bare in _POSITIVE) != invert else "false"
    return "unknown"
