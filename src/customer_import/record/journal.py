"""The run journal: every record's final outcome, committed as the run goes.

SQLite in WAL mode in the output directory. It is the single source of truth for a run:
results, rejects and summary.json are rendered from it, so a resumed run's outputs are the
same as an uninterrupted run's, and a ``kill -9`` loses at most the outcomes of the last
uncommitted flush (those records are simply sent again; the upsert is idempotent). What comes
a batch at a time (a dry run's valid records, an incremental sync's unchanged ones, the names
of the records to send) is kept a batch a row (``bulk.py``). A journal of an earlier version
gains the tables it lacks (its records' names stay empty).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, TypeVar

import polars as pl

from customer_import.contracts import (
    ROW,
    Omission,
    RecordStatus,
    RejectRow,
    RejectStage,
    ResultRow,
)
from customer_import.errors import StorageFault
from customer_import.record import bulk
from customer_import.record.locks import FolderLock

log = logging.getLogger("customer_import")
T = TypeVar("T")

JOURNAL_NAME: Final = "journal.sqlite"
_ROWS_A_STATEMENT: Final = 256  # at most 2,304 parameters: SQLite 3.32+ allows 32,766


#: Records of a bulk frame that hold about as much memory as one pending row (``rejects``).
_BULK_PER_ROW: Final = 10


class JournalState(StrEnum):
    """The journal's run, as its ``state`` meta value says."""

    RUNNING = "running"
    COMPLETED = "completed"
    GUARDED = "guarded"
    """Stopped by max_invalid_ratio before sending: nothing to resume."""
    ABANDONED = "abandoned"
    """Unfinished, then closed by a later run rather than resumed (``on_unfinished``)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outcomes (
    row INTEGER PRIMARY KEY,
    status TEXT NOT NULL,          -- created/updated/unchanged/duplicate/valid/rejected
    external_id TEXT,
    http_status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT,
    updated_at TEXT,
    detail TEXT,
    stage TEXT,                    -- rejects: parse/validation/duplicate/api/transport
    reason TEXT,
    source TEXT,                   -- rejects: the record's source values, a JSON array
    raw TEXT                       -- parse rejects: the line as read
);
CREATE TABLE IF NOT EXISTS lineage (   -- a fed back rejects file: where each record first was
    row INTEGER PRIMARY KEY,
    source_row TEXT NOT NULL,
    source_file TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS people (    -- names, as an earlier version kept them (now in bulk)
    row INTEGER PRIMARY KEY,
    first_name TEXT,
    last_name TEXT,
    email TEXT
);
CREATE TABLE IF NOT EXISTS omitted (   -- on_invalid = "omit": values left out of a record
    row INTEGER NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (row, field)
) WITHOUT ROWID;
"""
#: Statuses of records imported (or valid) as they are: their omissions are warnings.
IMPORTED: Final = ("created", "updated", "unchanged", "valid")
_IMPORTED_SQL: Final = f"({', '.join(map(repr, IMPORTED))})"


class Journal:
    """Outcomes by record number; ``flush()`` commits what was added since the last one.

    ``flush()`` may run in another thread (SQLite lets others run while it writes), so every
    method that uses the connection holds ``_lock``; results and rejects (``results.py``) are
    read once the run is over."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA + bulk.SCHEMA)
        self.lock: FolderLock | None = None
        """The output folder's lock, held until ``close``."""
        self._results: list[ResultRow] = []
        self._rejects: list[tuple[object, ...]] = []
        self._omitted: list[Omission] = []
        self._bulk: list[tuple[str, pl.DataFrame]] = []  # (kind, a batch's frame): bulk.py

    @property
    def pending_writes(self) -> int:
        """Rows waiting to be written, in what memory they hold: the records of a frame kept
        in bulk count a tenth each (a few columns of Arrow, against a Python tuple a row)."""
        lists: tuple[list[Any], ...] = (self._results, self._rejects, self._omitted)
        bulk = sum(frame.height for _, frame in self._bulk) // _BULK_PER_ROW
        return sum(map(len, lists)) + bulk

    def add_people(self, frame: pl.DataFrame) -> None:
        """ROW and ``PEOPLE`` of valid records, for results.csv: known when the records are
        prepared, kept apart from their outcomes (which come later)."""
        if not frame.is_empty():
            self._bulk.append((bulk.PEOPLE_KIND, frame.select(list(bulk.PEOPLE_SCHEMA))))

    def add_result(self, r: ResultRow) -> None:
        self._results.append(r)

    def add_unsent(self, status: RecordStatus, frame: pl.DataFrame) -> int:
        """A batch's records ``valid`` (a dry run) or ``unchanged`` (incremental): ROW and
        EXTERNAL_ID, kept as one blob (``bulk.py``); returns how many."""
        if not frame.is_empty():
            self._bulk.append((status, frame.select(list(bulk.OUTCOME_SCHEMA))))
        return frame.height

    def add_omitted(self, omitted: list[Omission]) -> None:
        """Values left out of records about to be sent (or found valid): results.csv's
        ``warnings`` once the records have an outcome."""
        self._omitted.extend(omitted)

    def add_reject(self, r: RejectRow) -> None:
        source = None if r.source is None else json.dumps(list(r.source), ensure_ascii=False)
        self._rejects.append(
            (r.row, r.external_id, r.http_status, r.attempts, r.stage, r.reason, source, r.raw)
        )

    def flush(self) -> None:
        """Commit what was added since the last flush; StorageFault when it cannot be written
        (what was not written is kept, for a later flush to try again)."""
        with self._lock:
            results, rejects = _take(self._results), _take(self._rejects)
            omitted, batches = _take(self._omitted), _take(self._bulk)
            if not (results or rejects or omitted or batches):
                return
            try:
                self._write(results, rejects, omitted, batches)
            except BaseException as exc:
                self._results[:0] = results  # kept for the next flush
                self._rejects[:0] = rejects
                self._omitted[:0] = omitted
                self._bulk[:0] = batches
                if isinstance(exc, sqlite3.Error | OSError):
                    raise StorageFault(self.path, exc) from exc
                raise

    def _write(
        self,
        results: list[ResultRow],
        rejects: list[tuple[object, ...]],
        omitted: list[Omission],
        batches: list[tuple[str, pl.DataFrame]],
    ) -> None:
        blobs = [bulk.parameters(kind, frame) for kind, frame in batches]
        self._db.execute("BEGIN")
        try:
            # A resumed run prepares its pending records again: their omissions are the same.
            self._insert(
                "(row, field, reason)", "(?, ?, ?)", omitted, "INSERT OR REPLACE INTO omitted"
            )
            self._db.executemany(bulk.INSERT, blobs)
            self._insert(
                "(row, external_id, status, http_status, attempts, created_at, updated_at, detail)",
                "(?, ?, ?, ?, ?, ?, ?, ?)",
                results,
            )
            self._insert(
                "(row, status, external_id, http_status, attempts, stage, reason, source, raw)",
                "(?, 'rejected', ?, ?, ?, ?, ?, ?, ?)",
                rejects,
            )
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # a full disk can fail the rollback too
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _insert(
        self,
        columns: str,
        values: str,
        rows: Sequence[Sequence[object]],
        into: str = "INSERT INTO outcomes",
    ) -> None:
        """Up to ``_ROWS_A_STATEMENT`` rows a statement, not one (``executemany``): a valid
        record costs 0.6-0.7 of it, a result 0.7 (``bench/journal_writes.py``), and the thread
        that flushes takes the GIL back from the event loop once a statement, not a row."""
        if not rows:
            return
        limit = self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # 999 before SQLite 3.32
        step = max(1, min(_ROWS_A_STATEMENT, limit // len(rows[0])))
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            sql = f"{into} {columns} VALUES {', '.join([values] * len(chunk))}"
            self._db.execute(sql, [value for row in chunk for value in row])

    def read(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        """The rows of a query (``results.py`` renders results.csv's windows so)."""
        with self._lock:
            return self._db.execute(query, params).fetchall()

    def _column(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        """The first column: no tuple kept a row (a resumed run may have millions)."""
        with self._lock:
            return [value for (value,) in self._db.execute(query, params)]

    def get_meta(self, key: str) -> str | None:
        rows = self.read("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, **values: str) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items())
            )

    def end(self, *, completed: bool, guarded: bool) -> None:
        """A completed run is replaced by the next one; so is a guarded one (stopped before
        sending anything: nothing to resume); any other stays ``running``, to resume."""
        if completed:
            self.set_meta(state=JournalState.COMPLETED)
        elif guarded:
            self.set_meta(state=JournalState.GUARDED)

    def done_rows(self, below: int | None = None) -> pl.Series:
        """ROW: the rows that have an outcome (only those below ``below`` when given)."""
        if below is not None:  # deactivations, rows below 1, are never settled in bulk
            query = "SELECT row FROM outcomes WHERE row < ?"
            return pl.Series(ROW, self._column(query, (below,)), dtype=pl.Int64)
        kept = pl.Series(ROW, self._column("SELECT row FROM outcomes"), dtype=pl.Int64)
        return pl.concat([kept, self.bulk_frame(None, [ROW]).to_series()])

    def bulk_frame(
        self, kind: str | None, columns: list[str], rows: tuple[int, int] = (1, -1)
    ) -> pl.DataFrame:
        """``columns`` of the records kept in bulk of one kind (None: every status, people left
        out; ``bulk.STATUS`` is a column), those of ``rows`` (first, last; -1: on) only."""
        first, last = rows
        where = "kind = ?" if kind else "kind != ?"
        query = f"SELECT kind, data FROM bulk WHERE {where} AND last_row >= ?"
        query += " AND first_row <= ? ORDER BY seq" if last >= 0 else " ORDER BY seq"
        params = (kind or bulk.PEOPLE_KIND, first, *((last,) if last >= 0 else ()))
        frame = bulk.frame_of(kind == bulk.PEOPLE_KIND, self.read(query, params), columns)
        wanted = pl.col(ROW) >= first
        return frame.filter(wanted & (pl.col(ROW) <= last) if last >= 0 else wanted)

    def count_done(self) -> int:
        """Input records (rows from 1) that have an outcome."""
        return sum(self.count_by_status().values())

    def forget_rejects(self, stage: RejectStage) -> int:
        """Turn rejects of one stage back into pending records; returns how many."""
        self.flush()
        with self._lock, self._db:
            cursor = self._db.execute(
                "DELETE FROM outcomes WHERE status = 'rejected' AND stage = ?", (stage,)
            )
        return cursor.rowcount

    def forget_rows(self, rows: list[int], stage: RejectStage) -> int:
        """Turn these rows' rejects of one stage back into pending records; returns how many."""
        self.flush()
        with self._lock, self._db:
            cursor = self._db.executemany(
                "DELETE FROM outcomes WHERE row = ? AND status = 'rejected' AND stage = ?",
                [(row, stage) for row in rows],
            )
        return cursor.rowcount

    def rows_missing_source(self) -> list[int]:
        query = "SELECT row FROM outcomes WHERE status = 'rejected' AND source IS NULL AND row > 0"
        return self._column(query)

    def set_sources(self, values: Iterable[tuple[int, Sequence[str]]]) -> None:
        rows = [(json.dumps(list(v), ensure_ascii=False), row) for row, v in values]
        with self._lock, self._db:
            self._db.executemany("UPDATE outcomes SET source = ? WHERE row = ?", rows)

    def rows_with_status(self, statuses: Sequence[RecordStatus]) -> list[int]:
        marks = ", ".join("?" * len(statuses))
        query = f"SELECT row FROM outcomes WHERE status IN ({marks})"
        return self._column(query, tuple(statuses))

    def count_by_status(self) -> dict[str, int]:
        """Input records only (rows from 1): deactivations are counted apart."""
        query = "SELECT status, count(*) FROM outcomes WHERE row > 0 GROUP BY status"
        counts = dict(self.read(query))
        in_bulk = "SELECT kind, sum(records) FROM bulk WHERE kind != ? GROUP BY kind"
        for status, count in self.read(in_bulk, (bulk.PEOPLE_KIND,)):
            counts[status] = counts.get(status, 0) + count
        return counts

    def count_rejects_by_stage(self) -> dict[str, int]:
        where = "WHERE status = 'rejected' AND row > 0"
        return dict(self.read(f"SELECT stage, count(*) FROM outcomes {where} GROUP BY stage"))

    def deactivations(self) -> dict[str, tuple[object, ...]]:
        """externalId -> (status, http_status, attempts, updated_at, reason), rows below 1."""
        query = (
            "SELECT external_id, status, http_status, attempts, updated_at, reason"
            " FROM outcomes WHERE row < 0"
        )
        return {str(r[0]): tuple(r[1:]) for r in self.read(query)}

    def count_deactivated(self) -> int:
        query = "SELECT count(*) FROM outcomes WHERE row < 0 AND status IN ('created', 'updated')"
        return int(self.read(query)[0][0])

    def count_omitted(self) -> dict[str, int]:
        """Per field, the input records imported (or valid) without it (``on_invalid``)."""
        query = (
            "SELECT field, count(*) FROM omitted JOIN outcomes USING (row)"
            f" WHERE status IN {_IMPORTED_SQL} AND row > 0 GROUP BY field"
        )
        counts = dict(self.read(query))
        apart = "SELECT o.row, o.field FROM omitted AS o LEFT JOIN outcomes AS x USING (row)"
        loose = self.read(f"{apart} WHERE x.row IS NULL")  # kept in bulk, or no outcome yet
        if loose:
            frame = pl.DataFrame(loose, schema={ROW: pl.Int64, "field": pl.String}, orient="row")
            settled = frame.filter(pl.col(ROW).is_in(self.bulk_frame(None, [ROW]).to_series()))
            for field, count in settled.group_by("field").len().iter_rows():
                counts[field] = counts.get(field, 0) + count
        return dict(sorted(counts.items()))

    def set_lineage(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """(row, source_row, source_file) of the records of a fed back rejects file."""
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO lineage VALUES (?, ?, ?)", rows)

    def pending_rows(self, records: int) -> Iterator[int]:
        """Record numbers 1..``records`` without an outcome."""
        done = set(self.done_rows().to_list())
        return (row for row in range(1, records + 1) if row not in done)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.flush()
            with self._lock:
                self._db.close()
        finally:
            if self.lock is not None:
                self.lock.release()


def _take(pending: list[T]) -> list[T]:
    """What ``pending`` holds, taken out of it, while another thread may append to it: appends
    (``append``, ``extend`` by a list), this copy and this deletion are each one step no thread
    interrupts; what comes in between stays for the next flush. (Swapping in a fresh list loses
    an append that began before the swap and ends after it.)"""
    taken = pending[:]
    del pending[: len(taken)]
    return taken


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
