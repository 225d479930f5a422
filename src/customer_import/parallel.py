"""Work on batches in several threads, handed on in their original order.

Preparing a batch (mapping, validation, request bodies) is mostly Polars, which releases the
GIL, while reading one is Python's csv module, which holds it. One thread reads and two
prepare, so reading overlaps preparing and the two cores both work: a dry run's records/s
rose by about a third (``bench/run_all.py --only memory``, README "Performance").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, TypeVar, cast

A = TypeVar("A")
B = TypeVar("B")

#: Threads that run ``fn``: one per core of the machines the job is tuned for.
WORKERS: Final = 2
_END: Final = object()


def ordered_map(
    fn: Callable[[A], B], items: Iterator[A], workers: int = WORKERS
) -> Generator[B, None, None]:
    """``fn(item)`` for each of ``items``, in order, with up to ``workers`` running at once.

    ``fn`` must be safe to call from several threads. ``items`` is advanced by one thread only
    (a generator cannot run in two at once), one item ahead. At most ``workers + 1`` results are
    computed ahead of the caller, so memory stays bounded. An error from ``items`` or ``fn``
    is raised where its item would have been, after the items before it.

    Closed early, it waits for nothing: work not started is cancelled, work in progress ends
    in the background, and the reading thread closes ``items`` after its read in progress. So
    closing is safe from any thread, the garbage collector's included, even one of its own.
    """
    reader = ThreadPoolExecutor(1, thread_name_prefix="read")
    pool = ThreadPoolExecutor(workers, thread_name_prefix="prepare")
    pending: deque[Future[B]] = deque()
    upcoming: Future[object] = reader.submit(next, items, _END)
    try:
        while True:
            while len(pending) <= workers and upcoming.exception() is None:
                item = upcoming.result()
                if item is _END:
                    break
                pending.append(pool.submit(fn, cast(A, item)))
                upcoming = reader.submit(next, items, _END)
            if not pending:
                if (failure := upcoming.exception()) is not None:
                    raise failure
                return
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        upcoming.cancel()
        try:
            reader.submit(_close, items)  # after the read in progress, in the thread that reads
        except RuntimeError:  # the interpreter is exiting and has ended the reading thread
            _close(items)
        reader.shutdown(wait=False)


def _close(items: Iterator[object]) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()
