"""Work on batches in several threads, handed on in their original order.

Preparing a batch (mapping, validation, request bodies) is mostly Polars, which releases the
GIL, while reading one is Python's csv module, which holds it. One thread reads and two
prepare, so reading overlaps preparing and the two cores both work: a dry run's records/s
rose by about a third (README, "Performance").
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Final, Generic, TypeVar, cast

A = TypeVar("A")
B = TypeVar("B")

#: Threads that run ``fn``: two cores' worth, as on the machines the job is tuned for.
WORKERS: Final = min(2, os.cpu_count() or 1)
_END: Final = object()


class OrderedMap(Generic[A, B]):
    """``fn(item)`` for each of ``items``, in order, with up to ``workers`` running at once.

    ``fn`` must be safe to call from several threads. ``items`` is advanced by one thread only
    (a generator cannot run in two at once). At most ``workers`` results are computed ahead of
    the caller, and one item is read ahead of those, so memory stays bounded. An error from
    ``items`` or ``fn`` is raised where its item would have been, after the items before it.

    ``close()`` (or leaving a ``with`` block) must be called once nothing iterates any more:
    it cancels the work not started, waits for the work in progress (one read, and at most
    ``workers`` items), then closes ``items``. Until then a thread may still be reading from
    ``items``, so its source must not be closed.
    """

    def __init__(self, fn: Callable[[A], B], items: Iterator[A], workers: int = WORKERS) -> None:
        self._fn, self._items, self._workers = fn, items, workers
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="read")
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="prepare")
        self._pending: deque[Future[B]] = deque()
        self._upcoming: Future[object] = self._reader.submit(next, items, _END)

    def __iter__(self) -> OrderedMap[A, B]:
        return self

    def __next__(self) -> B:
        self._fill()
        if self._pending:
            return self._pending.popleft().result()
        if (failure := self._upcoming.exception()) is not None:
            raise failure
        raise StopIteration

    def _fill(self) -> None:
        """Start ``fn`` on read items until ``workers`` more than the one to hand on are under
        way, or reading has ended."""
        while len(self._pending) <= self._workers and self._upcoming.exception() is None:
            item = self._upcoming.result()
            if item is _END:
                return
            self._pending.append(self._pool.submit(self._fn, cast(A, item)))
            self._upcoming = self._reader.submit(next, self._items, _END)

    def close(self) -> None:
        self._upcoming.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._reader.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        close = getattr(self._items, "close", None)
        if close is not None:  # no thread runs it any more
            close()

    def __enter__(self) -> OrderedMap[A, B]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
