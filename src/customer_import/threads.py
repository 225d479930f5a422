"""Work on an iterator's items in threads of their own, handed on in their original order.

Preparing a batch (mapping, validation, request bodies) is mostly Polars, which releases the
GIL. One thread reads and three prepare, so reading overlaps preparing and the two cores both
work: a dry run's records/s rose by about a third with two (README, "Performance"). Reading a
CSV is a chain too: its blocks of lines are read and judged a block or two ahead of Polars'
parse (``source/csv_stretches.py``).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Final, Generic, NamedTuple, TypeVar

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")

#: Threads that run ``fn``: one more than the two cores the job is tuned for. A batch is
#: some 80 Polars calls with Python between them, and a third batch fills the gaps two leave
#: (a dry run of 1,000,000 records: 426,000 -> 454,000 records/s; 15 MB more at its peak).
WORKERS: Final = min(3, (os.cpu_count() or 1) + 1)


class OrderedMap(Generic[A, B]):
    """``fn(item)`` for each of ``items``, in order, with up to ``workers`` running at once.

    ``fn`` must be safe to call from several threads. ``items`` is advanced by one thread only
    (a generator cannot run in two at once), which hands each item to the pool as soon as it
    is read. At most ``workers`` items are in the pool, and one more is read, ahead of the
    caller, so memory stays bounded. An error from ``items`` or ``fn`` is raised where its item
    would have been, after the items before it.

    ``close()`` (or leaving a ``with`` block) must be called once nothing iterates any more:
    it cancels the work not started, waits for the work in progress (one read, and at most
    ``workers`` items), then closes ``items``. Until then a thread may still be reading from
    ``items``, so its source must not be closed.
    """

    def __init__(
        self,
        fn: Callable[[A], B],
        items: Iterator[A],
        workers: int = WORKERS,
        name: str = "prepare",
    ) -> None:
        """``name``: the threads', ``fn``'s (``name_0``...) and the reader's (``name-read``)."""
        self._fn, self._items = fn, items
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._room = threading.Semaphore(workers)
        self._ready: queue.SimpleQueue[Future[B] | _Ended] = queue.SimpleQueue()
        self._stopped = False
        # A daemon: one left blocked by a caller that never closed it does not hold up exit.
        self._reader = threading.Thread(target=self._read, name=f"{name}-read", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for item in self._items:
                self._room.acquire()
                if self._stopped:
                    break
                self._ready.put(self._pool.submit(self._fn, item))
        except BaseException as exc:  # handed to the caller, in its place in the order
            self._ready.put(_Ended(exc))
        else:
            self._ready.put(_Ended(None))

    def __iter__(self) -> OrderedMap[A, B]:
        return self

    def __next__(self) -> B:
        if self._stopped:
            raise StopIteration
        head = self._ready.get()
        if isinstance(head, _Ended):
            self._ready.put(head)  # a later call ends the same way
            if head.failure is not None:
                raise head.failure
            raise StopIteration
        result = head.result()
        self._room.release()
        return result

    def stop(self) -> None:
        """Start nothing more: a run that is stopping needs no further batch. Safe to call
        from any thread, while another iterates; ``close()`` is still needed."""
        self._stopped = True
        self._room.release()  # a read waiting for room ends

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._reader.join()
        close_items(self._items)  # no thread runs it any more

    def __enter__(self) -> OrderedMap[A, B]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _Ended(NamedTuple):
    failure: BaseException | None


def close_items(items: object) -> None:
    """Closes an iterator that can be closed (a generator): what its ``finally`` holds (an
    open file) is let go now, not whenever it is collected."""
    close = getattr(items, "close", None)
    if close is not None:
        close()


async def prefetch(batches: Iterator[T]) -> AsyncIterator[T]:
    """Prepare the next batch in a thread while the current one is being sent."""
    loop = asyncio.get_running_loop()
    upcoming = loop.run_in_executor(None, next, batches, None)
    while (current := await upcoming) is not None:
        upcoming = loop.run_in_executor(None, next, batches, None)
        yield current
