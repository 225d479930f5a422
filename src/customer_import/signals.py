"""SIGINT and SIGTERM handlers set for a while, and those from before put back afterwards.

The command sets one for SIGTERM (a clean exit with every clean-up on the way), a run sets
its own and then a note while it writes its files (``pipeline``), and a ``--workers`` parent
passes them on to its workers (``workers``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Final

Handler = Callable[[int, FrameType | None], Any]
STOPS: Final = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def handlers_set(handler: Handler | None, signums: Iterable[int] = STOPS) -> Iterator[None]:
    """``handler`` for ``signums`` meanwhile (None: as they are, for the code inside to set),
    and the handlers from before once it ends, however it ends."""
    previous = {signum: signal.getsignal(signum) for signum in signums}
    if handler is not None:
        for signum in previous:
            signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
