"""The journal: outcomes written from a worker thread while the run adds more."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from customer_import.state import Journal, ResultRow, open_journal


def test_outcomes_added_while_a_thread_flushes_are_all_written(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    done = threading.Event()

    def flush_until_done() -> None:
        while not done.is_set():
            journal.flush()

    flusher = threading.Thread(target=flush_until_done)
    flusher.start()
    for row in range(1, 20_001):
        journal.add_result(ResultRow(row, f"id-{row}", "created", 201, 1))
    done.set()
    flusher.join()
    journal.flush()
    assert journal.count_done() == 20_000
    assert journal.done_rows() == list(range(1, 20_001))
    journal.close()


def test_a_failed_flush_keeps_its_outcomes_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = open_journal(tmp_path)
    journal.add_result(ResultRow(1, "id-1", "created", 201, 1))
    write = Journal._write

    def disk_full(self: Journal, *lists: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Journal, "_write", disk_full)
    with pytest.raises(OSError, match="disk full"):
        journal.flush()
    journal.add_result(ResultRow(2, "id-2", "updated", 200, 1))
    monkeypatch.setattr(Journal, "_write", write)
    journal.flush()
    assert journal.done_rows() == [1, 2]
    journal.close()
