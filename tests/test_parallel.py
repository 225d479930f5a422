"""ordered_map: batches worked on in several threads, handed on in order, none lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from customer_import.parallel import ordered_map


class Source:
    """Numbers 0..n-1, noting how far it has been read and whether it was closed."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.read = 0
        self.closed = False
        self.threads: set[str] = set()

    def __iter__(self) -> Iterator[int]:
        try:
            for i in range(self.n):
                if i == self.fail_at:
                    raise OSError(f"cannot read item {i}")
                self.threads.add(threading.current_thread().name)
                self.read = i + 1
                yield i
        finally:
            self.closed = True


def slow_square(i: int) -> int:
    """Later items finish first, so order has to be restored."""
    time.sleep(0.002 * (i % 3 == 0))
    return i * i


def test_results_come_in_input_order_and_none_is_lost() -> None:
    assert list(ordered_map(slow_square, iter(Source(50)))) == [i * i for i in range(50)]


def test_items_run_in_several_threads_at_once() -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def busy(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return i

    assert list(ordered_map(busy, iter(range(12)), workers=2)) == list(range(12))
    assert peak == 2


def test_the_source_is_read_by_one_thread_and_closed_at_the_end() -> None:
    source = Source(20)
    assert len(list(ordered_map(slow_square, iter(source)))) == 20
    assert len(source.threads) == 1
    assert source.closed


def test_an_error_from_fn_comes_after_the_items_before_it() -> None:
    def fail_on_5(i: int) -> int:
        if i == 5:
            raise ValueError("bad item 5")
        return i

    got: list[int] = []
    with pytest.raises(ValueError, match="bad item 5"):
        for value in ordered_map(fail_on_5, iter(range(10))):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]


def test_a_read_error_comes_after_every_item_read_before_it() -> None:
    source = Source(10, fail_at=6)
    got: list[int] = []
    with pytest.raises(OSError, match="cannot read item 6"):
        for value in ordered_map(slow_square, iter(source)):
            got.append(value)
    assert got == [i * i for i in range(6)]


def test_it_reads_only_a_few_items_ahead_of_the_caller() -> None:
    source = Source(1_000)
    results = ordered_map(slow_square, iter(source), workers=2)
    assert next(results) == 0
    time.sleep(0.05)  # time to run ahead, if it did
    # workers + 1 results computed ahead, and one item read ahead of those.
    assert source.read <= 1 + 3 + 1


def test_closing_early_stops_the_threads_and_closes_the_source() -> None:
    source = Source(1_000)
    before = threading.active_count()
    results = ordered_map(slow_square, iter(source))
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()
    assert source.closed
    assert source.read < 10
    assert threading.active_count() == before
