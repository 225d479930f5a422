"""A run's progress, handed to the caller's callback: shown, never in the way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

from customer_import.contracts import Progress

log = logging.getLogger("customer_import")

TICK_S: Final = 0.5


class ProgressReporter:
    """Calls ``callback``; one that fails (a closed terminal, a ``--workers`` parent gone) is
    turned off, logged once, and the run goes on."""

    def __init__(self, callback: Callable[[Progress], None] | None) -> None:
        self._callback = callback

    def report(self, progress: Callable[[], Progress]) -> None:
        """``progress`` is only built when there is someone to tell."""
        if self._callback is None:
            return
        try:
            self._callback(progress())
        except Exception as exc:  # whatever the display, the run goes on
            self._callback = None
            log.warning("progress is no longer shown (%s); the run goes on", exc)

    @asynccontextmanager
    async def ticking(
        self, flush: Callable[[], None], progress: Callable[[], Progress]
    ) -> AsyncIterator[None]:
        """Meanwhile, every ``TICK_S``: ``flush`` (the journal) in a thread, then a report;
        a last report once it ends."""
        ticker = asyncio.create_task(self._tick(flush, progress))
        try:
            yield
        finally:
            ticker.cancel()
            self.report(progress)

    async def _tick(self, flush: Callable[[], None], progress: Callable[[], Progress]) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            # In a thread: SQLite's writing would otherwise hold up every request's answer
            # (about 6 us a record, 1.5 % of a run against a fast API).
            await asyncio.to_thread(flush)
            self.report(progress)
