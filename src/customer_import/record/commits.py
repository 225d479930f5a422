"""Outcomes made durable in groups: a group of ``concurrency`` outcomes is committed as soon as
it is complete, and a thread of its own commits the outcomes waiting every few milliseconds
(a slow API's trickle).

A ``kill -9`` therefore loses fewer than a group of outcomes, plus the answers of the requests
in flight (at most ``concurrency``): a resume sends again at most twice the concurrency of
records the API already had. Before, a thread committed every half second, and 230 records
were sent again at concurrency 16. The full group is committed where it fills (the event
loop's thread) rather than handed to the thread: under load a thread can be late by many
groups, and the bound would go with it.

``nudge()`` runs once an outcome, so rather than count the journal's pending rows every time
it counts outcomes down from what a group still lacked when it last counted: the bound is
about outcomes, and fewer than a group of them are ever left uncommitted. Rows added without
a nudge (a batch's names and omissions, its parse and validation rejects, a dry run's valid
records, an incremental sync's unchanged ones: nothing a crash could make the run send again)
go with the next group or the timer's commit, off the event loop's thread; past a backlog of
``BACKLOG`` rows the thread that adds them commits them itself, so memory stays bounded.
"""

from __future__ import annotations

import threading
from typing import Final

from customer_import.record.journal import Journal

MAX_WAIT_S: Final = 0.005
#: Rows waiting beyond which the thread that adds more commits them itself: most of a batch
#: (a dry run whose every record is rejected peaked at 428 MB with 50,000, 385 MB with this).
BACKLOG: Final = 20_000


class GroupCommit:
    """Commits ``journal`` in groups; the timer runs while it is entered. ``nudge()`` after
    adding outcomes."""

    def __init__(self, journal: Journal, group: int, max_wait_s: float = MAX_WAIT_S) -> None:
        self._journal, self.group, self._max_wait_s = journal, max(1, group), max_wait_s
        self._unchecked = self.group  # outcomes to come before the pending rows are counted
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fault: Exception | None = None
        """The write that failed: the run must stop (``check`` and ``nudge`` raise it). A
        StorageFault, or a fault of the tool's own (an exit code 70): never lost with the
        thread that met it."""

    def check(self) -> None:
        """Rows were added that need no group of their own: commit them here only when the
        commit thread has fallen ``BACKLOG`` rows behind, so that memory stays bounded (a dry
        run whose every record is rejected makes them faster than one thread commits them).
        Raises the fault of a failed commit."""
        self._raise_fault()
        if self._journal.pending_writes >= BACKLOG:
            self._commit()
            self._raise_fault()

    def _raise_fault(self) -> None:
        if self.fault is not None:
            raise self.fault

    def nudge(self, outcomes: int = 1) -> None:
        """``outcomes`` were added: commit a complete group now. Raises the fault of a
        failed commit."""
        self._raise_fault()
        self._unchecked -= outcomes
        if self._unchecked > 0:
            return  # fewer than a group of outcomes can be waiting
        pending = self._journal.pending_writes
        self._unchecked = self.group - pending
        if pending >= self.group:
            self._unchecked = self.group
            self._commit()
            self._raise_fault()

    def __enter__(self) -> GroupCommit:
        self._stop.clear()
        self._thread = threading.Thread(target=self._every_few_ms, name="commit", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _every_few_ms(self) -> None:
        while not self._stop.wait(self._max_wait_s) and self.fault is None:
            self._commit()

    def _commit(self) -> None:
        try:
            self._journal.flush()
        except Exception as exc:  # raised in the run's thread, whatever it is
            self.fault = exc
