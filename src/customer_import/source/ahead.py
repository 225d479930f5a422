"""An iterator's items made in a thread of its own, a few ahead of whoever takes them.

Reading a CSV is a chain: bytes from the file (decompressed for .gz), each block judged line by
line, then parsed by Polars. The first two steps need nothing from the last, so they run ahead
in a thread while the block before is parsed: the pre-pass, which does little else, reads the
id column in about two thirds of the time.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Final, Generic, NamedTuple, TypeVar

T = TypeVar("T")

#: Items made ahead of the caller: one being taken, one waiting, one being made.
DEPTH: Final = 2


class _Ended(NamedTuple):
    failure: BaseException | None


class ReadAhead(Generic[T]):
    """``items`` advanced by a thread of its own, at most ``depth`` items ahead.

    An error from ``items`` is raised where its item would have been. ``close()`` (or leaving a
    ``with`` block) must be called before what ``items`` reads from is closed: it waits for
    the item being made, then ends the thread. (``parallel.OrderedMap`` does the same for
    work in a pool: it hands its items to threads that may finish out of order.)"""

    def __init__(self, items: Iterator[T], depth: int = DEPTH, name: str = "read-ahead") -> None:
        self._items = items
        self._queue: queue.Queue[T | _Ended] = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._ended: _Ended | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                self._queue.put(item)
                if self._closed.is_set():
                    return
        except BaseException as exc:  # raised in the caller, in its place
            self._queue.put(_Ended(exc))
        else:
            self._queue.put(_Ended(None))

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        if self._ended is None:
            item = self._queue.get()
            if not isinstance(item, _Ended):
                return item
            self._ended = item
        if self._ended.failure is not None:
            raise self._ended.failure
        raise StopIteration

    def close(self) -> None:
        """Stops the thread, then closes ``items``: the items made that no one took are
        dropped."""
        self._closed.set()
        while self._thread.is_alive():  # a put waiting for room returns, and the thread ends
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()
        close = getattr(self._items, "close", None)
        if close is not None:  # no thread runs it any more
            close()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
