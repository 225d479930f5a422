"""Column names compared as people mean them: case, accents, spaces and punctuation ignored.

"E-Mail", "e_mail" and "EMAIL" are one name, so are "Teléfono" and "TELEFONO". A name is looked
up by role (``rank``); a role's earlier groups rank before its later ones.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Final

from customer_import.scaffold import synonyms
from customer_import.scaffold.synonyms import Group

_NOT_ALNUM: Final = re.compile(r"[^0-9a-z]+")
_CAMEL: Final = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _bare(name: str) -> str:
    """Lower case without accents: NFKD splits "é" into "e" and a mark, which is dropped."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def normalise(name: str) -> str:
    """The name's letters and digits only, lower case, without accents ("Nº Cliente" ->
    "nocliente")."""
    return _NOT_ALNUM.sub("", _bare(name))


def words(name: str) -> tuple[str, ...]:
    """The name's words, camelCase split too ("HasOptedOutOfEmail" -> has, opted, out...)."""
    return tuple(w for w in _NOT_ALNUM.split(_bare(_CAMEL.sub(" ", name))) if w)


#: Role -> its groups of names. The notification roles carry their polarity: "+" opt-in.
ROLES: Final[Mapping[str, tuple[Group, ...]]] = {
    "externalId": synonyms.EXTERNAL_ID,
    "firstName": synonyms.FIRST_NAME,
    "lastName": synonyms.LAST_NAME,
    "fullName": synonyms.FULL_NAME,
    "email": synonyms.EMAIL,
    "phoneNumber": synonyms.PHONE,
    "active": synonyms.ACTIVE,
    "notifyEmail+": synonyms.EMAIL_OPT_IN,
    "notifyEmail-": synonyms.EMAIL_OPT_OUT,
    "notifyPhone+": synonyms.PHONE_OPT_IN,
    "notifyPhone-": synonyms.PHONE_OPT_OUT,
    "country": synonyms.COUNTRY,
}


def _index(groups: tuple[Group, ...]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for rank, (_, names) in enumerate(groups):
        for name in names:
            ranks.setdefault(normalise(name), rank)
    return ranks


def _languages() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for groups in ROLES.values():
        for language, names in groups:
            for name in names:
                found.setdefault(normalise(name), set()).add(language)
    return found


_RANKS: Final = {role: _index(groups) for role, groups in ROLES.items()}
_LANGUAGES: Final = _languages()
_FIRST_OR_FULL: Final = frozenset(normalise(n) for n in synonyms.FIRST_OR_FULL)


def rank(role: str, name: str) -> int | None:
    """The name's rank for the role (0 is the likeliest), or None when it is not one of its."""
    return _RANKS[role].get(normalise(name))


def is_known(name: str) -> bool:
    """Whether the name is one of any role's: a header, not a first record."""
    return normalise(name) in _LANGUAGES


def language(name: str) -> str | None:
    """The one language other than English the name belongs to, if it is that clear."""
    languages = _LANGUAGES.get(normalise(name), set())
    return next(iter(languages)) if len(languages) == 1 and "en" not in languages else None


def is_first_or_full(name: str) -> bool:
    return normalise(name) in _FIRST_OR_FULL


def is_secret(name: str) -> bool:
    """A column whose values must never be copied anywhere (a password, a token)."""
    bare = normalise(name)
    return any(part in bare for part in synonyms.SECRET_PARTS)


#: Words that make a column an email or phone column when its exact name is not known
#: ("Default Address Phone"), and words that make it something else ("SMS Opt-In", "Fax").
_LOOSE: Final = {
    "email": frozenset({"email", "mail", "courriel", "correo", "emailadresse"}),
    "phoneNumber": frozenset(
        {"phone", "telephone", "telefon", "telefono", "telefone", "tel", "mobile", "mobil",
         "cell", "handy", "movil", "celular", "portable", "cellulare"}
    ),
    "country": frozenset({"country", "land", "pais", "pays", "paese"}),
}  # fmt: skip
_NOT_LOOSE: Final = frozenset(
    {"opt", "optin", "optout", "opted", "marketing", "subscribed", "unsubscribed", "consent",
     "confirmed", "confirmation", "verified", "bounce", "bounced", "status", "newsletter",
     "type", "format", "accepts", "fax", "sms", "call", "ext", "extension", "code", "region",
     "province", "state", "date"}
)  # fmt: skip


def loosely(role: str, name: str) -> bool:
    """The name has a word of the role's and none that makes it something else."""
    found = set(words(name))
    blocking = _NOT_LOOSE - ({"code", "region"} if role == "country" else set())
    return bool(found & _LOOSE[role]) and not found & blocking
