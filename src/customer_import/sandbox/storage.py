"""SQLite storage of the sandbox's customers, keyed by (merchant id, externalId).

One connection, used synchronously from the event loop's thread: an upsert takes microseconds,
so handing it to a thread pool would cost more than it saves, and a single thread makes each
upsert atomic without locks. Every write is its own transaction (autocommit), so an answered write
is committed. File databases use WAL with ``synchronous=NORMAL``: a commit reaches
the OS (it survives a killed process) without an fsync per request.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS customers (
    merchant_id  TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    first_name   TEXT NOT NULL,
    last_name    TEXT,              -- NULL: never sent
    email        TEXT,
    phone_number TEXT,
    active       INTEGER,           -- booleans as 0/1
    notify_email INTEGER,
    notify_phone INTEGER,
    created_ms   INTEGER NOT NULL,  -- Unix epoch milliseconds
    updated_ms   INTEGER NOT NULL,
    UNIQUE (merchant_id, external_id)
)
"""
_CUSTOMER_COLUMNS: Final = (
    "external_id, first_name, last_name, email, phone_number,"
    " active, notify_email, notify_phone, created_ms, updated_ms"
)
# One statement per upsert (measured: about half the cost of SELECT then INSERT/UPDATE, or of
# JSON columns). An absent field is bound as NULL, and coalesce() then keeps the stored value:
# that is the merge, notification options included, key by key. updated_ms moves strictly
# forward, even within one millisecond or if the clock steps back, so an update is always visible
# and a create is the only write whose two timestamps are equal.
_UPSERT: Final = f"""
INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
ON CONFLICT (merchant_id, external_id) DO UPDATE SET
    first_name   = excluded.first_name,
    last_name    = coalesce(excluded.last_name, last_name),
    email        = coalesce(excluded.email, email),
    phone_number = coalesce(excluded.phone_number, phone_number),
    active       = coalesce(excluded.active, active),
    notify_email = coalesce(excluded.notify_email, notify_email),
    notify_phone = coalesce(excluded.notify_phone, notify_phone),
    updated_ms   = max(excluded.updated_ms, updated_ms + 1)
RETURNING {_CUSTOMER_COLUMNS}
"""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

Customer = dict[str, Any]
_Row = tuple[Any, ...]


@dataclass(frozen=True)
class UpsertResult:
    """A customer as stored after an upsert, and whether the upsert created it."""

    customer: Customer
    created: bool


class CustomerStore:
    """The sandbox's customers; not thread-safe by design (see the module docstring)."""

    def __init__(self, path: Path | None = None) -> None:
        """Open (creating if needed) ``path``, or an in-memory database when it is None."""
        self._db = sqlite3.connect(":memory:" if path is None else path, isolation_level=None)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def upsert(self, merchant_id: str, fields: Customer) -> UpsertResult:
        """Create the customer, or update the stored one with the fields present in ``fields``."""
        options = fields.get("notificationOptions", {})
        row = self._db.execute(
            _UPSERT,
            (
                merchant_id,
                fields["externalId"],
                fields["firstName"],
                fields.get("lastName"),
                fields.get("email"),
                fields.get("phoneNumber"),
                fields.get("active"),
                options.get("notifyEmail"),
                options.get("notifyPhone"),
                time.time_ns() // 1_000_000,
            ),
        ).fetchone()
        return UpsertResult(_to_customer(row), created=row[-2] == row[-1])

    def get(self, merchant_id: str, external_id: str) -> Customer | None:
        """The stored customer, or None."""
        row = self._db.execute(
            f"SELECT {_CUSTOMER_COLUMNS} FROM customers WHERE merchant_id = ? AND external_id = ?",
            (merchant_id, external_id),
        ).fetchone()
        return None if row is None else _to_customer(row)

    def page(self, merchant_id: str, limit: int, offset: int) -> tuple[list[Customer], int]:
        """One page of the merchant's customers in creation (rowid) order, and their count."""
        rows = self._db.execute(
            f"SELECT {_CUSTOMER_COLUMNS} FROM customers WHERE merchant_id = ?"
            " ORDER BY rowid LIMIT ? OFFSET ?",
            (merchant_id, limit, offset),
        ).fetchall()
        (total,) = self._db.execute(
            "SELECT count(*) FROM customers WHERE merchant_id = ?", (merchant_id,)
        ).fetchone()
        return [_to_customer(row) for row in rows], total

    def clear(self) -> None:
        """Delete every customer of every merchant (``POST /_sandbox/reset``)."""
        self._db.execute("DELETE FROM customers")

    def close(self) -> None:
        """Close the database; in WAL mode this also checkpoints it into the main file."""
        self._db.close()


def _to_customer(row: _Row) -> Customer:
    """The API's view of a stored row: fields never sent are left out, as they were."""
    (external_id, first, last, email, phone, active, notify_email, notify_phone) = row[:8]
    customer: Customer = {"externalId": external_id, "firstName": first}
    optional = (("lastName", last), ("email", email), ("phoneNumber", phone))
    customer.update((name, value) for name, value in optional if value is not None)
    if active is not None:
        customer["active"] = bool(active)
    flags = (("notifyEmail", notify_email), ("notifyPhone", notify_phone))
    options = {name: bool(value) for name, value in flags if value is not None}
    if options:
        customer["notificationOptions"] = options
    customer["createdAt"] = format_timestamp(row[8])
    customer["updatedAt"] = format_timestamp(row[9])
    return customer


def format_timestamp(epoch_ms: int) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-11-29T12:00:00.123Z``."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_format_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=64)
def _format_second(epoch_s: int) -> str:
    """Cached: under load, thousands of writes fall in the same second."""
    return (_EPOCH + timedelta(seconds=epoch_s)).strftime("%Y-%m-%dT%H:%M:%S")
