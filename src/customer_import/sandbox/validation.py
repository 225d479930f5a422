"""What the sandbox accepts: the add-update body and the paging query, checked as a strict API
would. Pure functions, no HTTP: ``app`` turns their findings into 400 answers.

Every problem is a ``Detail`` (``{"field": ..., "message": ...}``), the entries of the error
envelope's ``details``; a body's problems are all reported, not only the first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

_REQUIRED: Final = ("externalId", "firstName")
_STRING_FIELDS: Final = frozenset(("externalId", "firstName", "lastName", "email", "phoneNumber"))
_NOTIFICATION_KEYS: Final = frozenset(("notifyEmail", "notifyPhone"))
# deliberately simple: one @, no spaces, a dot in the domain; the job validates properly
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# at most 9 digits: anything larger is a mistake, and would overflow SQLite's integers
_QUERY_INT: Final = re.compile(r"[0-9]{1,9}")

Detail = dict[str, str]


def validate_customer(body: object) -> list[Detail]:
    """Every problem of an add-update body, empty when valid; all are reported, not the first."""
    if not isinstance(body, dict):
        return [detail("body", "must be a JSON object")]
    details = [detail(name, "is required") for name in _REQUIRED if name not in body]
    for name, value in body.items():
        details.extend(_field_problems(name, value))
    return details


def _field_problems(name: str, value: object) -> list[Detail]:
    if name in _STRING_FIELDS:
        return _string_problems(name, value)
    if name == "active":
        return [] if isinstance(value, bool) else [detail(name, "must be a boolean")]
    if name == "notificationOptions":
        return _notification_problems(value)
    return [detail(name, "is not a known field")]


def _string_problems(name: str, value: object) -> list[Detail]:
    if not isinstance(value, str):
        return [detail(name, "must be a string")]
    if name in _REQUIRED and not value.strip():
        return [detail(name, "must not be empty")]
    if name == "email" and not _EMAIL.fullmatch(value):
        return [detail(name, "must be a valid email address")]
    return []


def _notification_problems(value: object) -> list[Detail]:
    if not isinstance(value, dict):
        return [detail("notificationOptions", "must be an object")]
    details = []
    for key, flag in value.items():
        name = f"notificationOptions.{key}"
        if key not in _NOTIFICATION_KEYS:
            details.append(detail(name, "is not a known field"))
        elif not isinstance(flag, bool):
            details.append(detail(name, "must be a boolean"))
    return details


def detail(name: str, message: str) -> Detail:
    """One entry of an error's ``details``."""
    return {"field": name, "message": message}


class BadQuery(ValueError):
    """A query parameter out of range; carries the detail for the 400 answer."""

    def __init__(self, problem: Detail) -> None:
        super().__init__(problem["message"])
        self.detail = problem


def int_param(query: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    """A query parameter as an int >= ``minimum``; raises ``BadQuery`` otherwise."""
    raw = query.get(name)
    if raw is None:
        return default
    if _QUERY_INT.fullmatch(raw) and int(raw) >= minimum:
        return int(raw)
    raise BadQuery(detail(name, f"must be an integer >= {minimum}"))
