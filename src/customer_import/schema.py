"""The API's customer model: what one request body may hold."""

from __future__ import annotations

from typing import Final

#: Target fields a mapping may fill, in request-body order. Dotted names are nested.
TARGET_FIELDS: Final = (
    "externalId",
    "firstName",
    "lastName",
    "email",
    "phoneNumber",
    "active",
    "notificationOptions.notifyEmail",
    "notificationOptions.notifyPhone",
)
REQUIRED_FIELDS: Final = ("externalId", "firstName")
BOOLEAN_FIELDS: Final = (
    "active",
    "notificationOptions.notifyEmail",
    "notificationOptions.notifyPhone",
)
NAME_FIELDS: Final = ("firstName", "lastName")
STRING_FIELDS: Final = tuple(f for f in TARGET_FIELDS if f not in BOOLEAN_FIELDS)
