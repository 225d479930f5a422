"""ReadAhead: an iterator advanced in a thread of its own, a few items ahead, none lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from customer_import.config import SourceConfig
from customer_import.source import open_source
from customer_import.source.ahead import ReadAhead
from tests.test_parallel import Source


def test_items_come_in_order_from_another_thread_and_none_is_lost() -> None:
    source = Source(100)
    with ReadAhead(iter(source)) as items:
        assert list(items) == list(range(100))
    assert source.threads == {"read-ahead"} and source.closed


def test_an_error_comes_after_every_item_read_before_it_and_again_after() -> None:
    items = ReadAhead(iter(Source(10, fail_at=4)))
    assert [next(items) for _ in range(4)] == [0, 1, 2, 3]
    for _ in range(2):
        with pytest.raises(OSError, match="cannot read item 4"):
            next(items)
    items.close()


def test_it_reads_only_a_few_items_ahead() -> None:
    source = Source(1_000)
    with ReadAhead(iter(source), depth=2) as items:
        assert next(items) == 0
        # two waiting in the queue and one made, waiting for room: waited for, then given time
        deadline = time.monotonic() + 10
        while source.read < 1 + 2 + 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        assert source.read == 1 + 2 + 1


def test_closing_early_waits_for_the_read_under_way_then_closes_the_source() -> None:
    source = Source(1_000, read_s=0.02)
    before = set(threading.enumerate())
    items = ReadAhead(iter(source))
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert source.closed and source.read < 10
    assert set(threading.enumerate()) <= before


def test_a_csv_read_stopped_early_leaves_no_thread_reading_its_file(tmp_path: Path) -> None:
    """The blocks of a CSV are judged ahead of the parse; a run that stops mid-file closes it."""
    lines = "".join(f"C-{i},Ann,ann{i}@example.com\n" for i in range(120_000))  # 4 MB: blocks
    (tmp_path / "big.csv").write_text("id,first,email\n" + lines)
    before = set(threading.enumerate())
    with open_source(
        SourceConfig(path=tmp_path / "big.csv", batch_size=1_000), tmp_path / "big.csv"
    ) as source:
        batches = source.batches()
        assert next(batches).frame["id"][0] == "C-0"
        assert any(t.name == "judge-lines" for t in threading.enumerate())
        batches.close()  # type: ignore[attr-defined]  # a generator
        assert set(threading.enumerate()) <= before
