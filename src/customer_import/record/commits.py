"""Outcomes made durable in groups: the journal committed from a thread of its own, as soon as
a group of outcomes waits, or a few milliseconds after the last commit.

A ``kill -9`` then loses at most the outcomes waiting (about a group: the run's concurrency)
and the answers of the requests in flight, which a resume sends again; before, it lost up to
half a second of outcomes (230 records re-sent at concurrency 16). Committing in a thread keeps
SQLite's writing off the event loop (it lets go of the GIL while it writes).
"""

from __future__ import annotations

import threading
from typing import Final

from customer_import.errors import StorageFault
from customer_import.record.journal import Journal

MAX_WAIT_S: Final = 0.005


class GroupCommit:
    """Commits ``journal`` while it is entered; ``nudge()`` after adding outcomes."""

    def __init__(self, journal: Journal, group: int, max_wait_s: float = MAX_WAIT_S) -> None:
        self._journal, self.group, self._max_wait_s = journal, max(1, group), max_wait_s
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.fault: StorageFault | None = None
        """The write that failed: the run must stop (``nudge`` raises it)."""

    def nudge(self) -> None:
        """A group is waiting: commit it now. Raises the StorageFault of a failed commit."""
        if self.fault is not None:
            raise self.fault
        if self._journal.pending_writes >= self.group:
            self._wake.set()

    def __enter__(self) -> GroupCommit:
        self._stopping = False
        self._thread = threading.Thread(target=self._commit, name="commit", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _commit(self) -> None:
        while not self._stopping:
            self._wake.wait(self._max_wait_s)
            self._wake.clear()
            try:
                self._journal.flush()
            except StorageFault as exc:
                self.fault = exc
                return
