"""OrderedMap: items worked on in several threads, handed on in order, none lost."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from customer_import.config import SourceConfig
from customer_import.source import open_source
from customer_import.threads import OrderedMap


class Source:
    """Numbers 0..n-1, noting how far it has been read and whether it was closed."""

    def __init__(self, n: int, fail_at: int | None = None, read_s: float = 0.0) -> None:
        self.n, self.fail_at, self.read_s = n, fail_at, read_s
        self.read = 0
        self.reading = False
        self.closed = False
        self.threads: set[str] = set()

    def __iter__(self) -> Iterator[int]:
        try:
            for i in range(self.n):
                self.reading = True
                time.sleep(self.read_s)
                self.reading = False
                if i == self.fail_at:
                    raise OSError(f"cannot read item {i}")
                self.threads.add(threading.current_thread().name)
                self.read = i + 1
                yield i
        finally:
            assert not self.reading, "closed while a read was under way"
            self.closed = True


def slow_square(i: int) -> int:
    """Later items finish first, so order has to be restored."""
    time.sleep(0.002 * (i % 3 == 0))
    return i * i


def test_results_come_in_input_order_and_none_is_lost() -> None:
    with OrderedMap(slow_square, iter(Source(50))) as results:
        assert list(results) == [i * i for i in range(50)]


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

    with OrderedMap(busy, iter(range(12)), workers=2) as results:
        assert list(results) == list(range(12))
    assert peak == 2


def test_the_source_is_read_by_one_thread_and_closed_at_the_end() -> None:
    source = Source(20)
    with OrderedMap(slow_square, iter(source)) as results:
        assert len(list(results)) == 20
    assert len(source.threads) == 1
    assert source.closed


def test_an_error_from_fn_comes_after_the_items_before_it() -> None:
    def fail_on_5(i: int) -> int:
        if i == 5:
            raise ValueError("bad item 5")
        return i

    source = Source(10)
    got: list[int] = []
    with pytest.raises(ValueError, match="bad item 5"), OrderedMap(fail_on_5, iter(source)) as r:
        got.extend(r)
    assert got == [0, 1, 2, 3, 4]
    assert source.closed


def test_a_read_error_comes_after_every_item_read_before_it() -> None:
    source = Source(10, fail_at=6)
    got: list[int] = []
    with (
        pytest.raises(OSError, match="cannot read item 6"),
        OrderedMap(slow_square, iter(source)) as r,
    ):
        got.extend(r)
    assert got == [i * i for i in range(6)]


def test_it_reads_only_a_few_items_ahead_of_the_caller() -> None:
    source = Source(1_000)
    with OrderedMap(slow_square, iter(source), workers=2) as results:
        assert next(results) == 0
        # The item handed on, `workers` more under way or done, and one read ahead of those:
        # waited for, however busy the machine, then given time to run further, if it did.
        deadline = time.monotonic() + 10
        while source.read < 1 + 2 + 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        assert source.read == 1 + 2 + 1


def test_the_first_item_is_handed_on_without_waiting_for_the_next_reads() -> None:
    """Sending starts as soon as the first (small) batch is ready."""

    first_taken = threading.Event()
    waited: list[bool] = []

    def first_then_blocked() -> Iterator[int]:
        yield 0
        # the next reads cannot end before the caller has the first item (or 10 s have passed)
        waited.append(first_taken.wait(timeout=10))
        yield from range(1, 4)

    with OrderedMap(slow_square, first_then_blocked()) as results:
        assert next(results) == 0
        first_taken.set()
        assert list(results) == [1, 4, 9]
    assert waited == [True]  # the first item was handed on before the next read ended


def test_once_stopped_it_hands_on_nothing_more_and_reads_no_further() -> None:
    source = Source(1_000)
    with OrderedMap(slow_square, iter(source)) as results:
        assert next(results) == 0
        results.stop()
        assert list(results) == []
        time.sleep(0.05)
        assert source.read <= 4  # as far as it had got: nothing read after the stop


def test_closing_early_waits_for_the_read_under_way_then_closes_the_source() -> None:
    """A run that stops mid-file closes its source next: no thread may be reading it then."""
    source = Source(1_000, read_s=0.02)
    before = set(threading.enumerate())  # earlier tests' threads may still be ending
    results = OrderedMap(slow_square, iter(source))
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()
    assert source.closed
    assert source.read < 10
    assert set(threading.enumerate()) <= before


def test_one_left_open_at_exit_does_not_stop_the_interpreter_or_print(tmp_path: Path) -> None:
    script = tmp_path / "abandon.py"
    script.write_text(
        "from customer_import.threads import OrderedMap\n"
        "results = OrderedMap(str, iter(range(100)))\n"
        "print(next(results))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=30
    )
    assert (done.stdout, done.stderr) == ("0\n", "")


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
        assert any(t.name.startswith("judge-lines") for t in threading.enumerate())
        batches.close()  # type: ignore[attr-defined]  # a generator
        assert set(threading.enumerate()) <= before
