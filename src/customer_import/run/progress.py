"""A run's progress, handed to the caller's callback: shown, never in the way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

    @contextmanager
    def ticking(self, progress: Callable[[], Progress]) -> Iterator[None]:
        """Meanwhile (on a running event loop), a report every ``TICK_S``; a last one at the
        end."""
        ticker = asyncio.create_task(self._tick(progress))
        try:
            yield
        finally:
            ticker.cancel()
            self.report(progress)

    async def _tick(self, progress: Callable[[], Progress]) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.report(progress)
