"""What the journal is given a batch at a time, kept as one row a batch: Arrow IPC blobs.

A dry run's valid records and an incremental sync's unchanged ones (``ROW``, ``EXTERNAL_ID``)
are settled without a request, a whole batch at once; the names of the records to send
(``ROW`` and ``PEOPLE``) are known a batch at a time too. None of them needs a row of its own
in SQLite: a batch is one row of the ``bulk`` table, its records a zstd-compressed Arrow IPC
blob that Polars writes and reads without a Python object a record. A million valid records
with their names cost about 0.2 s of CPU this way, against about 4 s as SQLite rows (the
tuples, the binding, the B-tree). The blobs are committed in the journal's own transactions,
so a ``kill -9`` loses them exactly as it loses any other row not yet committed.
"""

from __future__ import annotations

import io
from typing import Final

import polars as pl

from customer_import.contracts import EXTERNAL_ID, PEOPLE, ROW

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS bulk (      -- records given a batch at a time (bulk.py)
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,            -- a status (valid, unchanged): row, externalId; or 'people'
    first_row INTEGER NOT NULL,
    last_row INTEGER NOT NULL,
    records INTEGER NOT NULL,
    data BLOB NOT NULL             -- Arrow IPC, zstd
);
"""
#: The kind of the blobs that hold names: ROW and ``PEOPLE`` (results' firstName, lastName,
#: email as validated), known when the records are prepared, before their outcomes.
PEOPLE_KIND: Final = "people"
OUTCOME_SCHEMA: Final = {ROW: pl.Int64, EXTERNAL_ID: pl.String}
PEOPLE_SCHEMA: Final = {ROW: pl.Int64, **dict.fromkeys(PEOPLE, pl.String)}
STATUS: Final = "status"
INSERT: Final = "INSERT INTO bulk (kind, first_row, last_row, records, data) VALUES (?, ?, ?, ?, ?)"


def parameters(kind: str, frame: pl.DataFrame) -> tuple[object, ...]:
    """The ``INSERT`` parameters of one batch's frame (not empty)."""
    rows = frame[ROW]
    blob = io.BytesIO()
    frame.write_ipc(blob, compression="zstd")
    return kind, rows.min(), rows.max(), frame.height, blob.getvalue()


def decoded(blob: bytes, columns: list[str] | None = None) -> pl.DataFrame:
    return pl.read_ipc(io.BytesIO(blob), columns=columns)


def frame_of(people: bool, blobs: list[tuple[str, bytes]], columns: list[str]) -> pl.DataFrame:
    """(kind, blob) of people's blobs or of outcomes', in one frame: ``columns`` of the
    records, and ``STATUS`` (the kind) when asked for."""
    schema = PEOPLE_SCHEMA if people else OUTCOME_SCHEMA
    wanted = [c for c in columns if c != STATUS]
    empty = pl.DataFrame(schema=schema).select(wanted)
    parts = [decoded(blob, wanted).with_columns(pl.lit(kind).alias(STATUS)) for kind, blob in blobs]
    empty = empty.with_columns(pl.lit(None, dtype=pl.String).alias(STATUS))
    return pl.concat([empty, *parts], how="vertical_relaxed").select(columns)
