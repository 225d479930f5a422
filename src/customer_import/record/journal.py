"""The run journal: every record's final outcome, committed as the run goes.

SQLite in WAL mode in the output directory. It is the single source of truth for a run:
results, rejects and summary.json are rendered from it, so a resumed run's outputs are the
same as an uninterrupted run's, and a ``kill -9`` loses at most the outcomes of the last
uncommitted flush (those records are simply sent again; the upsert is idempotent). A journal
of an earlier version gains the tables it lacks (``people``: its records' names stay empty).
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

from customer_import.contracts import (
    Omission,
    RecordStatus,
    RejectRow,
    RejectStage,
    ResultRow,
)
from customer_import.errors import StorageFault
from customer_import.record.cells import sheet_safe, text
from customer_import.record.locks import FolderLock

log = logging.getLogger("customer_import")
T = TypeVar("T")

JOURNAL_NAME: Final = "journal.sqlite"
_ROWS_A_STATEMENT: Final = 256  # at most 2,304 parameters: SQLite 3.32+ allows 32,766


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
CREATE TABLE IF NOT EXISTS people (    -- results' firstName, lastName, email: as validated
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
_IMPORTED: Final = "('created', 'updated', 'unchanged', 'valid')"


class Journal:
    """Outcomes by record number; ``flush()`` commits what was added since the last one.

    ``flush()`` may run in another thread (SQLite lets others run while it writes), so every
    method that uses the connection holds ``_lock``; ``results()`` and ``rejects()`` are read
    once the run is over."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.lock: FolderLock | None = None
        """The output folder's lock, held until ``close``."""
        self._results: list[ResultRow] = []
        # Records settled without a request (a dry run's valid ones, an incremental sync's
        # unchanged ones), (row, externalId) by status: two values bind faster than eight.
        self._unsent: dict[RecordStatus, list[tuple[int, str]]] = {
            RecordStatus.VALID: [],
            RecordStatus.UNCHANGED: [],
        }
        self._rejects: list[tuple[object, ...]] = []
        self._omitted: list[Omission] = []
        self._people: list[tuple[object, ...]] = []

    @property
    def pending_writes(self) -> int:
        lists: tuple[list[Any], ...] = (self._results, self._rejects, self._omitted, self._people)
        return sum(len(p) for p in (*lists, *self._unsent.values()))

    def add_people(self, rows: list[tuple[object, ...]]) -> None:
        """(row, firstName, lastName, email) of valid records, for results.csv: known when the
        records are prepared, kept apart from their outcomes (which come later)."""
        self._people.extend(rows)

    def add_result(self, r: ResultRow) -> None:
        self._results.append(r)

    def add_unsent(self, status: RecordStatus, records: Iterable[tuple[int, str]]) -> int:
        """Records ``valid`` (a dry run) or ``unchanged`` (incremental), (row, externalId)
        each, in bulk: no ResultRow a record; returns how many."""
        rows = list(records)  # from a generator, a flush could run between two of them
        self._unsent[status].extend(rows)
        return len(rows)

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
            omitted, people = _take(self._omitted), _take(self._people)
            unsent = {status: _take(rows) for status, rows in self._unsent.items()}
            if not (results or rejects or omitted or people or any(unsent.values())):
                return
            try:
                self._write(results, unsent, rejects, omitted, people)
            except BaseException as exc:
                self._results[:0] = results  # kept for the next flush
                for status, rows in unsent.items():
                    self._unsent[status][:0] = rows
                self._rejects[:0] = rejects
                self._omitted[:0] = omitted
                self._people[:0] = people
                if isinstance(exc, sqlite3.Error | OSError):
                    raise StorageFault(self.path, exc) from exc
                raise

    def _write(
        self,
        results: list[ResultRow],
        unsent: dict[RecordStatus, list[tuple[int, str]]],
        rejects: list[tuple[object, ...]],
        omitted: list[Omission],
        people: list[tuple[object, ...]],
    ) -> None:
        self._db.execute("BEGIN")
        try:
            # A resumed run prepares its pending records again: their omissions are the same.
            self._insert(
                "(row, field, reason)", "(?, ?, ?)", omitted, "INSERT OR REPLACE INTO omitted"
            )
            self._insert("", "(?, ?, ?, ?)", people, "INSERT OR REPLACE INTO people")
            self._insert(
                "(row, external_id, status, http_status, attempts, created_at, updated_at, detail)",
                "(?, ?, ?, ?, ?, ?, ?, ?)",
                results,
            )
            for status, rows in unsent.items():
                self._insert("(row, status, external_id)", f"(?, '{status}', ?)", rows)
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

    def _rows(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(query, params).fetchall()

    def _column(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        """The first column: no tuple kept a row (a resumed run may have millions)."""
        with self._lock:
            return [value for (value,) in self._db.execute(query, params)]

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
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

    def done_rows(self, below: int | None = None) -> list[int]:
        """Rows that have an outcome (only those below ``below`` when given)."""
        if below is None:
            return self._column("SELECT row FROM outcomes")
        return self._column("SELECT row FROM outcomes WHERE row < ?", (below,))

    def count_done(self) -> int:
        """Input records (rows from 1) that have an outcome."""
        return int(self._rows("SELECT count(*) FROM outcomes WHERE row > 0")[0][0])

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
        return dict(self._rows(query))

    def count_rejects_by_stage(self) -> dict[str, int]:
        where = "WHERE status = 'rejected' AND row > 0"
        return dict(self._rows(f"SELECT stage, count(*) FROM outcomes {where} GROUP BY stage"))

    def deactivations(self) -> dict[str, tuple[object, ...]]:
        """externalId -> (status, http_status, attempts, updated_at, reason), rows below 1."""
        query = (
            "SELECT external_id, status, http_status, attempts, updated_at, reason"
            " FROM outcomes WHERE row < 0"
        )
        return {str(r[0]): tuple(r[1:]) for r in self._rows(query)}

    def count_deactivated(self) -> int:
        query = "SELECT count(*) FROM outcomes WHERE row < 0 AND status IN ('created', 'updated')"
        return int(self._rows(query)[0][0])

    def count_omitted(self) -> dict[str, int]:
        """Per field, the input records imported (or valid) without it (``on_invalid``)."""
        query = (
            "SELECT field, count(*) FROM omitted JOIN outcomes USING (row)"
            f" WHERE status IN {_IMPORTED} AND row > 0 GROUP BY field ORDER BY field"
        )
        return dict(self._rows(query))

    def set_lineage(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """(row, source_row, source_file) of the records of a fed back rejects file."""
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO lineage VALUES (?, ?, ?)", rows)

    def lineage(self) -> dict[int, tuple[str, str]]:
        """row -> (source_row, source_file) of the rejected records (``set_lineage``)."""
        query = (
            "SELECT row, l.source_row, l.source_file FROM outcomes JOIN lineage AS l USING (row)"
            " WHERE status = 'rejected'"
        )
        return {row: (source_row, file) for row, source_row, file in self._rows(query)}

    def results(self, *, lineage: bool = False, safe: bool = True) -> Iterator[tuple[object, ...]]:
        """results.csv's rows (``outputs.files.RESULTS_HEADER``): empty values are '', text
        is sheet-safe (``safe=False``: as it is, for a workbook's text cells). ``lineage``:
        then source_row and source_file (``set_lineage``)."""
        cell = sheet_safe if safe else text
        warnings = "''"
        joined = " LEFT JOIN people AS p USING (row)"
        if self._rows("SELECT 1 FROM omitted LIMIT 1"):
            warnings = cell(f"CASE WHEN status IN {_IMPORTED} THEN w.text END")
            joined += (
                " LEFT JOIN (SELECT row, group_concat(field || ' omitted: ' || reason, '; ')"
                " AS text FROM omitted GROUP BY row) AS w USING (row)"
            )
        origin = ""
        if lineage:
            origin = f", ifnull(l.source_row, ''), {cell('l.source_file')}"
            joined += " LEFT JOIN lineage AS l USING (row)"
        people = ", ".join(cell(f"p.{c}") for c in ("first_name", "last_name", "email"))
        yield from self._db.execute(
            f"SELECT row, {cell('external_id')}, status, ifnull(http_status, ''),"
            f" attempts, {cell('created_at')}, {cell('updated_at')},"
            f" {cell('detail')}, {warnings}, {people}{origin}"
            f" FROM outcomes{joined} WHERE status != 'rejected' AND row > 0 ORDER BY row"
        )

    def pending_rows(self, records: int) -> Iterator[int]:
        """Record numbers 1..``records`` without an outcome."""
        done = set(self._column("SELECT row FROM outcomes WHERE row > 0"))
        return (row for row in range(1, records + 1) if row not in done)

    def rejects(self) -> Iterator[tuple[int, list[str], str, str, str | None]]:
        """(row, source values, stage, reason, raw)."""
        query = (
            "SELECT row, source, stage, reason, raw FROM outcomes"
            " WHERE status = 'rejected' AND row > 0 ORDER BY row"
        )
        for row, source, stage, reason, raw in self._db.execute(query):
            yield row, json.loads(source) if source else [], stage, reason, raw

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
