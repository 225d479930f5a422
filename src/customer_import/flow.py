"""How fast to send, shared by every worker: rate pacing, AIMD on 429, the circuit breaker.

The API's rate limit is unpublished, so the job finds it. Until the first 429 nothing but the
concurrency bound limits the rate. A 429 paces every worker to 95 % of what the server is
admitting: successes a second, counted from the start of the spell of 429s once that is a
tenth of a second old (before that, a token bucket's first burst inflates any count). While
answers stay good the rate grows slowly (0.5 % a second), so the job settles close to the
limit with few 429s. Cuts come at most every quarter second and never compound below the
measure: that is AIMD with a measured anchor, where halving, the textbook decrease, would
average 75 % of the limit.

The circuit breaker stops the job from burning every record's retries during an outage:
after ``threshold`` transient failures in a row with no answer in between, workers pause
and a single probe request is let through every few seconds; an answer closes the
breaker, and an outage longer than ``max_outage_s`` stops the run (resumable).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from customer_import.errors import ApiUnavailable

log = logging.getLogger("customer_import")

_WINDOW_S: Final = 2.0
_DECREASE: Final = 0.95
_GROWTH_PER_S: Final = 0.005
_COOLDOWN_S: Final = 0.25  # one cut per spell of 429s from requests already in flight
_QUOTA_PAUSE_S: Final = 5.0  # a Retry-After this long is a quota window: everyone waits it out
_MIN_RATE: Final = 1.0
_MIN_SPAN_S: Final = 0.1  # measuring over less would make one lucky success a huge rate


class Pacer:
    """The request rate for all workers: fixed (``ceiling``), adaptive, or both."""

    def __init__(
        self,
        ceiling: float | None = None,
        *,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate: float | None = ceiling
        self._clock = clock
        self._ceiling = ceiling
        self._adaptive = adaptive
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._successes: deque[float] = deque()
        self._first_success: float | None = None
        self._last_success: float | None = None
        self._last_cut = -_COOLDOWN_S
        self._last_growth = clock()
        self._congestion: float | None = None  # when the current spell of 429s began
        self._last_limited = -_WINDOW_S

    async def before_request(self) -> None:
        """Wait out a quota pause, then for this request's slot at the current rate."""
        now = self._clock()
        if self._paused_until > now:
            await asyncio.sleep(self._paused_until - now)
            now = self._clock()
        if self.rate is None:
            return
        slot = max(self._next_slot, now - 1.0 / self.rate)  # at most one request of burst
        self._next_slot = slot + 1.0 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    def on_success(self) -> None:
        now = self._clock()
        self._successes.append(now)
        if self._first_success is None:
            self._first_success = now
        self._last_success = now
        while self._successes and self._successes[0] < now - _WINDOW_S:
            self._successes.popleft()
        self._grow(now)

    def on_rate_limited(self, retry_after: float | None) -> None:
        now = self._clock()
        if retry_after is not None and retry_after >= _QUOTA_PAUSE_S:
            self._paused_until = max(self._paused_until, now + retry_after)
        if self._adaptive and now - self._last_cut >= _COOLDOWN_S:
            self._cut(now)
        self._last_limited = now

    def _cut(self, now: float) -> None:
        if self._first_success is None or self._last_success is None:
            return  # nothing about what the server admits yet: see the module docstring
        if self._last_success <= self._last_cut:
            return  # nothing new since the last cut
        if self._congestion is None or now - self._last_limited > _WINDOW_S:
            self._congestion = now  # a new spell of 429s begins
        admitted = self._admitted(now) * _DECREASE
        self.rate = max(_MIN_RATE, admitted if self.rate is None else min(self.rate, admitted))
        self._last_cut = self._last_growth = now
        log.info("rate limited: pacing every worker to %.0f requests/s", self.rate)

    def _admitted(self, now: float) -> float:
        """Successes a second, counted since this spell of 429s began once that is long enough
        to measure: before it, a token bucket's initial burst inflates any count."""
        start = max(now - _WINDOW_S, self._first_success or now)
        if self._congestion is not None and now - self._congestion >= _MIN_SPAN_S:
            start = max(start, self._congestion)
        span = max(_MIN_SPAN_S, now - start)
        return sum(1 for t in reversed(self._successes) if t >= start) / span

    def _grow(self, now: float) -> None:
        if self.rate is None or not self._adaptive or now - self._last_growth < 0.5:
            return
        grown = self.rate * (1 + _GROWTH_PER_S * (now - self._last_growth))
        self.rate = grown if self._ceiling is None else min(grown, self._ceiling)
        self._last_growth = now


class CircuitBreaker:
    """Opens after ``threshold`` transient failures in a row; then one probe at a time."""

    def __init__(
        self, threshold: int = 50, probe_every_s: float = 5.0, max_outage_s: float = 300.0
    ):
        self._threshold = threshold
        self._probe_every_s = probe_every_s
        self._max_outage_s = max_outage_s
        self._failures = 0
        self._opened_at: float | None = None
        self._next_probe = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    async def admit(self) -> None:
        """Return when a request may go: always while closed; one probe at a time while open."""
        while self._opened_at is not None:
            now = time.monotonic()
            if now - self._opened_at > self._max_outage_s:
                raise ApiUnavailable(
                    f"the API has failed every request for over {self._max_outage_s:.0f} s "
                    "(server errors or no connection); resume once it is back"
                )
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return
            await asyncio.sleep(min(0.25, max(0.01, self._next_probe - now)))

    def on_answer(self) -> None:
        """Any answer but a transient failure: the server is there."""
        if self._opened_at is not None:
            log.info(
                "the API answers again after %.0f s: resuming", time.monotonic() - self._opened_at
            )
        self._failures, self._opened_at, self._probing = 0, None, False

    def on_failure(self) -> None:
        self._failures += 1
        now = time.monotonic()
        if self._opened_at is not None:
            self._probing = False
            self._next_probe = now + self._probe_every_s
        elif self._failures >= self._threshold:
            self._opened_at, self._next_probe = now, now + self._probe_every_s
            log.warning(
                "the API failed %d requests in a row: pausing, one probe every %.0f s "
                "(the run stops after %.0f s of this)",
                self._failures,
                self._probe_every_s,
                self._max_outage_s,
            )
