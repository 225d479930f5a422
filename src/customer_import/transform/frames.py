"""Frames of records to send (``ROW``, ``EXTERNAL_ID``, ``BODY``) and the items the sender
takes from them."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from customer_import.contracts import BODY, EXTERNAL_ID, ROW, SendItem


def sends_frame(
    rows: Iterable[int] | pl.Series, ids: Iterable[str] | pl.Series, bodies: Iterable[str]
) -> pl.DataFrame:
    """A frame of records to send: ``ROW``, ``EXTERNAL_ID``, ``BODY`` (JSON text)."""
    return pl.DataFrame(
        {ROW: rows, EXTERNAL_ID: ids, BODY: bodies},
        schema={ROW: pl.Int64, EXTERNAL_ID: pl.String, BODY: pl.String},
    )


def send_items(sends: pl.DataFrame) -> list[SendItem]:
    """What the sender takes from a frame of ``ROW``, ``EXTERNAL_ID``, ``BODY``."""
    bodies = sends[BODY].cast(pl.Binary).to_list()  # UTF-8 bytes, encoded by Polars
    return list(map(SendItem, sends[ROW].to_list(), sends[EXTERNAL_ID].to_list(), bodies))
