"""The journal: outcomes written from a worker thread while the run adds more."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from customer_import.contracts import (
    EXTERNAL_ID,
    PEOPLE,
    ROW,
    Omission,
    RecordStatus,
    RejectRow,
    RejectStage,
    ResultRow,
)
from customer_import.errors import StorageFault
from customer_import.record import results
from customer_import.record.commits import BACKLOG, GroupCommit
from customer_import.record.journal import Journal
from customer_import.record.opening import open_journal
from customer_import.record.results import reject_frames, result_frames


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
    assert journal.done_rows().to_list() == list(range(1, 20_001))
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
    assert journal.done_rows().to_list() == [1, 2]
    journal.close()


@pytest.mark.parametrize("variable_limit", [32_766, 999, 17])
def test_every_kind_of_outcome_is_written_whatever_sqlites_parameter_limit(
    tmp_path: Path, variable_limit: int, monkeypatch: pytest.MonkeyPatch
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
    journal.add_unsent(RecordStatus.VALID, unsent([row for row in rows if row % 3 == 2]))
    journal.flush()
    assert sorted(journal.done_rows()) == list(rows)
    assert journal.count_by_status() == {"created": 200, "rejected": 200, "valid": 200}
    written = [row for frame in result_frames(journal) for row in frame.rows()]
    assert written[0] == ("1", "id-1", "created", "201", "1", "t0", "t0", *[None] * 5)
    assert written[1] == ("2", "id-2", "valid", None, "0", *[None] * 7)
    monkeypatch.setattr(results, "REJECTS_WINDOW", 7)  # windows of record numbers
    rejected = [row for frame in reject_frames(journal, 2) for row in frame.rows()]
    assert rejected[0] == ("a", "b", "3", "api", "HTTP 400", None)
    assert [int(r[2]) for r in rejected] == list(range(3, 601, 3))
    journal.close()


def test_valid_batches_added_while_a_thread_flushes_are_all_written_and_read_back(
    tmp_path: Path,
) -> None:
    """A dry run adds each batch's valid records at once (a blob a batch): none may be lost or
    counted twice while another thread flushes, and they read back in order, by row range."""
    journal = open_journal(tmp_path)
    with flushing(journal):
        starts = range(1, 20_001, 1_000)
        added = 0
        for start in starts:
            added += journal.add_unsent(RecordStatus.VALID, unsent(range(start, start + 1_000)))
            time.sleep(0)  # let the flushing thread run between batches
    assert added == 20_000
    assert journal.done_rows().to_list() == list(range(1, 20_001))
    assert journal.count_by_status() == {"valid": 20_000}
    middle = journal.bulk_frame(RecordStatus.VALID, [ROW, EXTERNAL_ID], rows=(1_500, 2_499))
    assert middle[ROW].to_list() == list(range(1_500, 2_500))
    assert middle[EXTERNAL_ID][0] == "id-1500"
    journal.close()


def unsent(rows: Iterable[int]) -> pl.DataFrame:
    """A batch's (row, externalId) as the pipeline records valid or unchanged records."""
    return pl.DataFrame({ROW: list(rows)}).with_columns(
        pl.format("id-{}", pl.col(ROW)).alias(EXTERNAL_ID)
    )


def test_results_join_rows_blobs_names_and_warnings_across_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """results are rendered a window of record numbers at a time: a window's sent records
    (rows), valid ones (blobs that straddle windows), their names (a record prepared twice by
    its latest) and the warnings of omitted values come out in order, each record once."""
    monkeypatch.setattr(results, "WINDOW", 4)
    journal = open_journal(tmp_path)
    journal.add_unsent(RecordStatus.VALID, unsent([2, 3, 5, 6, 9]))
    for row in (1, 7):
        journal.add_result(ResultRow(row, f"id-{row}", RecordStatus.UPDATED, 200, 2, "t0", "t1"))
    journal.add_reject(RejectRow(4, "id-4", RejectStage.API, "HTTP 400", None, None, 400, 1))
    names = [(2, "Old", None, None), (5, "=Ada", "Lovelace", "a@example.com")]
    journal.add_people(pl.DataFrame(names, schema=[ROW, *PEOPLE], orient="row"))
    journal.add_people(pl.DataFrame([(2, "New", None, None)], schema=[ROW, *PEOPLE], orient="row"))
    journal.add_omitted([Omission(5, "phoneNumber", "'1234' is not a phone number")])
    journal.flush()
    rows = [row for frame in result_frames(journal) for row in frame.rows()]
    assert [(r[0], r[2]) for r in rows] == [
        ("1", "updated"), ("2", "valid"), ("3", "valid"), ("5", "valid"),
        ("6", "valid"), ("7", "updated"), ("9", "valid"),
    ]  # fmt: skip
    assert rows[0][:5] == ("1", "id-1", "updated", "200", "2")
    assert rows[1][-3:] == ("New", None, None)
    assert rows[3][8:] == (
        "phoneNumber omitted: '1234' is not a phone number",
        "'=Ada",  # sheet-safe
        "Lovelace",
        "a@example.com",
    )
    assert journal.count_omitted() == {"phoneNumber": 1}
    assert journal.count_done() == 8
    journal.close()


def test_a_commit_thread_that_meets_any_fault_hands_it_to_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run's records wait for the commit thread: a fault there (a full disk, or a fault
    of the tool's own) is raised in the run's thread, not lost with the thread."""
    journal = open_journal(tmp_path)

    def broken(*_: object) -> None:
        raise RuntimeError("encoder broke")

    monkeypatch.setattr(Journal, "_write", broken)
    commits = GroupCommit(journal, group=64, max_wait_s=0.001)
    with commits:
        journal.add_unsent(RecordStatus.VALID, unsent(range(1, 11)))
        deadline = time.monotonic() + 5
        while commits.fault is None and time.monotonic() < deadline:
            time.sleep(0.001)
    with pytest.raises(RuntimeError, match="encoder broke"):
        commits.check()
    monkeypatch.undo()
    journal.close()  # what the failed commits kept is written by the last flush
    assert Journal(tmp_path / "journal.sqlite").count_by_status() == {"valid": 10}


def test_rows_that_wait_for_the_commit_thread_are_committed_by_their_adder_past_a_backlog(
    tmp_path: Path,
) -> None:
    """Rows that need no group (rejects, valid records) wait for the commit thread, but not
    without bound: past ``BACKLOG`` rows the thread that adds them commits them (memory stays
    flat when every record of a dry run is rejected). Records kept in bulk, a compact frame a
    batch, count a tenth of a row each."""
    journal = open_journal(tmp_path)
    commits = GroupCommit(journal, group=64)  # not entered: no commit thread runs
    journal.add_unsent(RecordStatus.VALID, unsent(range(1, BACKLOG + 1)))
    commits.check()
    assert journal.count_by_status() == {}  # a tenth of the backlog waits for the thread
    journal.add_unsent(RecordStatus.VALID, unsent(range(BACKLOG + 1, 10 * BACKLOG + 1)))
    commits.check()
    assert journal.count_by_status() == {"valid": 10 * BACKLOG}
    assert journal.pending_writes == 0
    for row in range(10 * BACKLOG + 1, 11 * BACKLOG + 1):  # a Python tuple each
        journal.add_reject(RejectRow(row, None, RejectStage.VALIDATION, "bad", ()))
    commits.check()
    assert journal.count_by_status() == {"valid": 10 * BACKLOG, "rejected": BACKLOG}
    journal.close()
