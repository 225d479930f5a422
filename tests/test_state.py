"""The journal: outcomes written from a worker thread while the run adds more."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from customer_import.contracts import RecordStatus, RejectRow, RejectStage, ResultRow
from customer_import.errors import StorageFault
from customer_import.record.journal import Journal
from customer_import.record.opening import open_journal


@contextmanager
def flushing(journal: Journal) -> Iterator[None]:
    """Another thread flushes ``journal`` over and over while the block runs, as the ticker does."""
    done = threading.Event()

    def flush_until_done() -> None:
        while not done.is_set():
            journal.flush()

    flusher = threading.Thread(target=flush_until_done)
    flusher.start()
    try:
        yield
    finally:
        done.set()
        flusher.join()
    journal.flush()


def test_outcomes_added_while_a_thread_flushes_are_all_written(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    with flushing(journal):
        for row in range(1, 20_001):
            journal.add_result(ResultRow(row, f"id-{row}", RecordStatus.CREATED, 201, 1))
    assert journal.count_done() == 20_000
    assert journal.done_rows() == list(range(1, 20_001))
    journal.close()


def test_a_failed_flush_keeps_its_outcomes_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal(tmp_path)
    journal.add_result(ResultRow(1, "id-1", RecordStatus.CREATED, 201, 1))
    write = Journal._write

    def disk_full(self: Journal, *lists: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Journal, "_write", disk_full)
    with pytest.raises(StorageFault, match="disk full"):
        journal.flush()
    journal.add_result(ResultRow(2, "id-2", RecordStatus.UPDATED, 200, 1))
    monkeypatch.setattr(Journal, "_write", write)
    journal.flush()
    assert journal.done_rows() == [1, 2]
    journal.close()


@pytest.mark.parametrize("variable_limit", [32_766, 999, 17])
def test_every_kind_of_outcome_is_written_whatever_sqlites_parameter_limit(
    tmp_path: Path, variable_limit: int
) -> None:
    """Rows go in several to a statement: as many as the SQLite build's limit allows (999
    parameters before 3.32; 17 here: two results or rejects a statement, or eight valid records)."""
    journal = open_journal(tmp_path)
    journal._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, variable_limit)
    rows = range(1, 601)  # more than two statements' worth, and not a multiple of one
    for row in rows:
        if row % 3 == 0:
            reject = RejectRow(
                row, f"id-{row}", RejectStage.API, "HTTP 400", ["a", "b"], None, 400, 1
            )
            journal.add_reject(reject)
        elif row % 3 == 1:
            journal.add_result(
                ResultRow(row, f"id-{row}", RecordStatus.CREATED, 201, 1, "t0", "t0")
            )
    journal.add_unsent(RecordStatus.VALID, ((row, f"id-{row}") for row in rows if row % 3 == 2))
    journal.flush()
    assert journal.done_rows() == list(rows)
    assert journal.count_by_status() == {"created": 200, "rejected": 200, "valid": 200}
    results = list(journal.results())
    assert results[0] == (1, "id-1", "created", 201, 1, "t0", "t0", "", "", "", "", "")
    assert results[1] == (2, "id-2", "valid", "", 0, "", "", "", "", "", "", "")
    assert next(journal.rejects()) == (3, ["a", "b"], "api", "HTTP 400", None)
    journal.close()


def test_valid_records_added_from_a_generator_while_a_thread_flushes_are_all_written(
    tmp_path: Path,
) -> None:
    """A dry run adds a batch's valid records from a generator (Polars rows): the flushing
    thread can run between two of them, and none may be lost or miscounted."""
    journal = open_journal(tmp_path)

    def slow_rows(start: int) -> Iterator[tuple[int, str]]:
        for row in range(start, start + 1_000):
            if row % 50 == 0:
                time.sleep(0)  # let the flushing thread run mid-batch
            yield row, f"id-{row}"

    with flushing(journal):
        starts = range(1, 20_001, 1_000)
        added = sum(journal.add_unsent(RecordStatus.VALID, slow_rows(start)) for start in starts)
    assert added == 20_000
    assert journal.done_rows() == list(range(1, 20_001))
    journal.close()
