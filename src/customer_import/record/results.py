"""results' and rejects' rows, rendered from the journal a window of record numbers at a time.

A window's outcomes come from the ``outcomes`` table (records sent, decided or rejected one at
a time) and from the bulk blobs (valid, unchanged: ``bulk.py``); its names from the bulk
``people`` blobs (and from the ``people`` table of an earlier version's journal); the warnings
of values left out (``omitted``) and a fed back rejects file's lineage are joined on. Polars
does the work, ``WINDOW`` record numbers at a time, so memory stays flat however long the
export: rendering a dry run's million records takes a fraction of a second. A reject's source
values, kept as a JSON array, become the rejects file's columns the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import polars as pl

from customer_import.contracts import EXTERNAL_ID, PEOPLE, ROW
from customer_import.record import bulk
from customer_import.record.cells import sheet_safe
from customer_import.record.journal import IMPORTED, Journal

WINDOW: Final = 100_000
#: A reject's row holds its source values and reason, as Python objects on their way from
#: SQLite: a fifth of the window keeps a million rejects within the memory of a dry run.
REJECTS_WINDOW: Final = 20_000
STATUS: Final = bulk.STATUS
_WARNINGS: Final = "warnings"
_SENT: Final = {
    ROW: pl.Int64,
    EXTERNAL_ID: pl.String,
    STATUS: pl.String,
    "http_status": pl.Int64,
    "attempts": pl.Int64,
    "created_at": pl.String,
    "updated_at": pl.String,
    "detail": pl.String,
}
_LINEAGE: Final = {ROW: pl.Int64, "source_row": pl.String, "source_file": pl.String}
#: Columns written as they are: numbers, and the statuses the tool writes.
_PLAIN: Final = (ROW, STATUS, "http_status", "attempts", "source_row")


def result_frames(
    journal: Journal, *, lineage: bool = False, safe: bool = True
) -> Iterator[pl.DataFrame]:
    """results' rows in order (``outputs.files.RESULTS_HEADER``, then source_row and
    source_file with ``lineage``), every column text, null where empty. Text is sheet-safe
    (``safe=False``: as it is, for a workbook's text cells)."""
    for first in range(1, _last_row(journal) + 1, WINDOW):
        frame = _window(journal, (first, first + WINDOW - 1), lineage)
        if not frame.is_empty():
            yield _as_text(frame, safe)


def _last_row(journal: Journal) -> int:
    sent = journal.read("SELECT max(row) FROM outcomes")[0][0]
    kept = journal.read("SELECT max(last_row) FROM bulk WHERE kind != ?", (bulk.PEOPLE_KIND,))
    return max(sent or 0, kept[0][0] or 0)


def _window(journal: Journal, rows: tuple[int, int], lineage: bool) -> pl.DataFrame:
    query = (
        "SELECT row, external_id, status, http_status, attempts, created_at, updated_at, detail"
        " FROM outcomes WHERE status != 'rejected' AND row BETWEEN ? AND ?"
    )
    sent = pl.DataFrame(journal.read(query, rows), schema=_SENT, orient="row")
    kept = journal.bulk_frame(None, [ROW, EXTERNAL_ID, STATUS], rows)
    frame = pl.concat([sent, kept.with_columns(attempts=pl.lit(0))], how="diagonal_relaxed")
    frame = frame.sort(ROW).join(_people(journal, rows), on=ROW, how="left", maintain_order="left")
    frame = frame.join(_warnings(journal, rows), on=ROW, how="left", maintain_order="left")
    return _with_origin(journal, frame, rows) if lineage else frame


def _with_origin(journal: Journal, frame: pl.DataFrame, rows: tuple[int, int]) -> pl.DataFrame:
    """A fed back rejects file's records with where each first was: source_row, source_file."""
    query = "SELECT row, source_row, source_file FROM lineage WHERE row BETWEEN ? AND ?"
    found = pl.DataFrame(journal.read(query, rows), schema=_LINEAGE, orient="row")
    return frame.join(found, on=ROW, how="left", maintain_order="left")


def _people(journal: Journal, rows: tuple[int, int]) -> pl.DataFrame:
    """ROW and ``PEOPLE``; a record prepared again (a resumed run) by its latest names."""
    query = "SELECT row, first_name, last_name, email FROM people WHERE row BETWEEN ? AND ?"
    earlier = pl.DataFrame(journal.read(query, rows), schema=bulk.PEOPLE_SCHEMA, orient="row")
    kept = journal.bulk_frame(bulk.PEOPLE_KIND, list(bulk.PEOPLE_SCHEMA), rows)
    names = pl.concat([earlier, kept])
    if (names[ROW].diff() > 0).all():  # each record once: no resumed run prepared it again
        return names
    return names.unique(ROW, keep="last", maintain_order=True)


def _warnings(journal: Journal, rows: tuple[int, int]) -> pl.DataFrame:
    query = (
        "SELECT row, group_concat(field || ' omitted: ' || reason, '; ') FROM omitted"
        " WHERE row BETWEEN ? AND ? GROUP BY row"
    )
    schema = {ROW: pl.Int64, _WARNINGS: pl.String}
    return pl.DataFrame(journal.read(query, rows), schema=schema, orient="row")


def _as_text(frame: pl.DataFrame, safe: bool) -> pl.DataFrame:
    imported = pl.col(STATUS).is_in(IMPORTED)
    frame = frame.with_columns(pl.when(imported).then(pl.col(_WARNINGS)).alias(_WARNINGS))
    order = [ROW, EXTERNAL_ID, STATUS, *list(_SENT)[3:], _WARNINGS, *PEOPLE]
    order += [c for c in _LINEAGE if c != ROW and c in frame.columns]
    return _cells(frame, order, [c for c in frame.columns if c not in _PLAIN], safe)


def _cells(frame: pl.DataFrame, order: list[str], texts: list[str], safe: bool) -> pl.DataFrame:
    """``order``'s columns as text, null where empty; ``texts`` sheet-safe with ``safe``."""
    if safe:
        frame = frame.with_columns(sheet_safe(c) for c in texts)
    text = frame.select(pl.col(order).cast(pl.String))
    return text.with_columns(pl.when(pl.all() != "").then(pl.all()).name.keep())


_REJECTED: Final = {
    ROW: pl.Int64,
    "source": pl.String,
    "stage": pl.String,
    "reason": pl.String,
    "raw": pl.String,
}


def reject_frames(
    journal: Journal, width: int, *, lineage: bool = False, safe: bool = True
) -> Iterator[pl.DataFrame]:
    """rejects' rows in order: the ``width`` source values (blank where the journal kept
    none), source_row and source_file with ``lineage``, then _row, _stage, _reason, _raw;
    every column text, null where empty, sheet-safe but for the numbers and the stage."""
    query = (
        "SELECT row, source, stage, reason, raw FROM outcomes"
        " WHERE status = 'rejected' AND row BETWEEN ? AND ? ORDER BY row"
    )
    for first in range(1, _last_row(journal) + 1, REJECTS_WINDOW):
        rows = (first, first + REJECTS_WINDOW - 1)
        frame = pl.DataFrame(journal.read(query, rows), schema=_REJECTED, orient="row")
        if frame.is_empty():
            continue
        if lineage:
            frame = _with_origin(journal, frame, rows)
        yield _rejects_as_text(frame, width, lineage, safe)


def _rejects_as_text(frame: pl.DataFrame, width: int, lineage: bool, safe: bool) -> pl.DataFrame:
    decoded = frame.with_columns(pl.col("source").str.json_decode(pl.List(pl.String)))
    values = pl.col("source")  # decoded once: an expression used twice is computed twice
    names = [f"_{i}" for i in range(width)]
    columns = decoded.with_columns(
        values.list.get(i, null_on_oob=True).alias(n) for i, n in enumerate(names)
    )
    origin = ["source_row", "source_file"] if lineage else []
    order = [*names, *origin, ROW, "stage", "reason", "raw"]
    return _cells(columns, order, [*names, *origin, "reason", "raw"], safe)
