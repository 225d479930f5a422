"""ordered_map: batches worked on in several threads, handed on in order, none lost."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

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


def settled(condition: Callable[[], bool]) -> bool:
    """Closing does not wait for the threads: give them a moment to finish."""
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)
    return condition()


def test_closing_early_stops_the_threads_and_closes_the_source() -> None:
    source = Source(1_000)
    before = set(threading.enumerate())  # earlier tests' threads may still be ending
    results = ordered_map(slow_square, iter(source))
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()
    assert settled(lambda: source.closed and set(threading.enumerate()) <= before)
    assert source.read < 10


def test_it_can_be_closed_from_one_of_its_own_threads() -> None:
    """The garbage collector finalizes an abandoned iterator in whichever thread it runs in."""
    results: list[Generator[int, None, None]] = []
    suspended = threading.Event()
    outcome: list[BaseException | None] = []

    def closes_the_iterator(i: int) -> int:
        if i == 2:
            suspended.wait(5)
            try:
                results[0].close()
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)
        return i

    source = Source(1_000)
    results.append(ordered_map(closes_the_iterator, iter(source)))
    assert next(results[0]) == 0
    suspended.set()  # the iterator now waits at its yield, as an abandoned one does
    assert settled(lambda: bool(outcome) and source.closed)
    assert outcome == [None]


def test_one_left_open_at_exit_closes_its_source_quietly(tmp_path: Path) -> None:
    """Interrupted runs leave one for the interpreter to finalize as it exits."""
    script = tmp_path / "abandon.py"
    script.write_text(
        "from customer_import.parallel import ordered_map\n"
        "def numbers():\n"
        "    try:\n"
        "        yield from range(100)\n"
        "    finally:\n"
        "        print('source closed')\n"
        "results = ordered_map(str, numbers())\n"
        "print(next(results))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "source", "closed"]
    assert done.stderr == ""
