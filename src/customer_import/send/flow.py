"""How fast to send, shared by every worker: rate pacing, rate discovery on 429, the breaker.

The API's rate limit is unpublished, so the job finds it (AIMD with a measured anchor):

- Until the first 429 nothing but the concurrency bound (and ``rate_limit``, if set) limits
  the rate, so an API without a limit is never slowed down.
- The first 429 of an unpaced run holds every worker for a tenth of a second: the requests
  already in flight are answered and nothing more is sent into a limit just hit. Those
  requests are most of a run's 429s (about ``concurrency`` of them, less what the limiter
  refills meanwhile) and cannot be called back. Then every worker is paced at what the
  limiter admitted while they were answered, and the pace grows 5 % a second until the next
  spell of 429s: measured over a few tens of milliseconds that first figure can be off either
  way, and a token bucket hides an undershoot by saving up tokens until they are spent.
- A spell of 429s (429s less than two seconds apart) is measured: a limiter answering 429
  has no tokens left, so what it admits between two 429s is what it refilled in between, its
  rate. Requests are counted by when they were sent, because a busy client reads answers in
  bunches. The spell's first 429 cuts the pace to 95 % of the recent throughput; once the
  spell spans a tenth of a second, to 95 % of its measure. Cuts never compound below the
  measure, and a cut retimes the workers already waiting for a slot: otherwise up to
  ``concurrency`` more requests go out at the old pace.
- Otherwise the pace grows 0.5 % a second while answers are good, so the job settles just
  under the limit with few 429s. Halving, the textbook decrease, would average 75 % of it.
- A ``Retry-After`` of 5 s or more (a quota window) pauses every worker.

Tried and left out, by measurement (``bench/run_all.py --only rate``): a TCP-like slow start
(a limiter with a burst allowance lets it grow past the client's own capacity before the first
429, so as many requests are in flight then as without it), and holding every worker for the
whole ``Retry-After`` (the limiter saves up a burst meanwhile, which hides the next overshoot).

The circuit breaker stops the job from burning every record's retries during an outage:
after ``threshold`` transient failures in a row with no answer in between, workers pause
and a single probe request is let through every ``probe_every_s``; an answer closes the
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
from customer_import.send.goodput import GoodputJudge

log = logging.getLogger("customer_import")

_WINDOW_S: Final = 2.0  # 429s closer than this are one spell; also the throughput window
_DECREASE: Final = 0.95
_GROWTH_PER_S: Final = 0.005
_DISCOVERY_GROWTH_PER_S: Final = 0.05  # from the first hold's rough pace to the next 429
_QUOTA_PAUSE_S: Final = 5.0  # a Retry-After this long is a quota window: everyone waits it out
_HOLD_S: Final = 0.1  # after the first 429, for the requests in flight to be answered
_MIN_RATE: Final = 1.0
_MIN_SPAN_S: Final = 0.1  # measuring over less would make one lucky success a huge rate
_MIN_DRAINED: Final = 5  # successes among the first hold's answers needed to pace by them
_HELD_CUT: Final = 0.9  # while holding: the cut when the share of 429s rises


class Pacer:
    """The request rate for all workers: fixed (``ceiling``), adaptive, or both.

    ``before_request`` returns when the request goes out; give that time back to
    ``on_success`` / ``on_rate_limited`` (by default, the time of the answer)."""

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
        self._epoch = 0  # bumped by every cut and pause: slots taken before it are stale
        self._paused_until = 0.0
        self._successes: deque[float] = deque()  # when each recent success was sent
        self._first_success: float | None = None
        self._last_success: float | None = None
        self._last_cut = -_WINDOW_S
        self._last_growth = clock()
        self._last_limited = -_WINDOW_S
        self._spell: _Spell | None = None
        self._discovering = False  # paced by the first hold's rough measure: grow fast
        self._hold: _Hold | None = None
        self._logged_rate = 0.0
        self._judge = GoodputJudge()

    def free_now(self) -> float | None:
        """The time now when a request may go at once (nothing paces, pauses or holds the
        workers): the common case needs no coroutine. None: await ``before_request``."""
        if self.rate is not None or self._hold is not None:
            return None
        now = self._clock()
        return now if self._paused_until <= now else None

    async def before_request(self) -> float:
        """Wait out a pause, then for this request's slot; return when it is sent."""
        while True:
            now = self._clock()
            if self._paused_until > now:
                await asyncio.sleep(self._paused_until - now)
                continue
            self._end_hold(now)
            if self.rate is None:
                return now
            slot = max(self._next_slot, now - 1.0 / self.rate)  # at most one request of burst
            self._next_slot = slot + 1.0 / self.rate
            if slot <= now:
                return now
            epoch = self._epoch
            await asyncio.sleep(slot - now)
            if epoch == self._epoch:  # else a cut or a pause came: take a slot at the new pace
                return slot

    def on_success(self, sent_at: float | None = None) -> None:
        now = self._clock()
        sent_at = now if sent_at is None else sent_at
        successes = self._successes  # runs once a request: locals, and no call that returns
        successes.append(sent_at)
        if self._first_success is None:
            self._first_success = now
        self._last_success = now
        horizon = now - _WINDOW_S
        while successes and successes[0] < horizon:
            successes.popleft()
        if self._adaptive:
            self._judged(now, sent_at, limited=False)
        if self.rate is not None:
            self._grow(now)

    def on_rate_limited(self, retry_after: float | None, sent_at: float | None = None) -> None:
        now = self._clock()
        if retry_after is not None and retry_after >= _QUOTA_PAUSE_S:
            if now + retry_after > self._paused_until + 1.0:  # a new wait, logged once
                log.warning(
                    "the API asks to wait %.0f s (Retry-After): every request waits", retry_after
                )
            self._pause(now + retry_after)
        sent_at = now if sent_at is None else sent_at
        if self._adaptive and self._judge.held_share is None:
            self._adapt(now, sent_at)
        self._judged(now, sent_at, limited=True)
        self._last_limited = now

    def _judged(self, now: float, sent_at: float, *, limited: bool) -> None:
        """Once slowing down is found not to lower the share of 429s (``goodput.py``), hold
        the pace with the most successes; cut only when the share rises clearly above the
        usual one, and go back to the usual cuts when 429s become rare."""
        window = self._judge.answered(sent_at, limited) if self._adaptive else None
        if window is None:
            return
        if self._judge.held_share is None:
            hold = self._judge.pace_to_hold(window)
            if hold is not None:
                self._hold_pace(now, hold)
            return
        verdict = self._judge.while_holding(window)
        if verdict == "risen" and self.rate is not None:
            self._set_rate(now, max(_MIN_RATE, self.rate * _HELD_CUT))
        elif verdict == "over":
            log.info("429 answers have become rare: the pace adapts to them again")
            self._spell = None

    def _hold_pace(self, now: float, pace: float) -> None:
        pace = pace if self._ceiling is None else min(pace, self._ceiling)
        log.warning(
            "the share of 429 answers does not fall when the job slows down (a quota shared "
            "with other clients?): holding %.0f requests/s, the pace with the most successes",
            pace,
        )
        self._spell, self._discovering = None, False
        self._set_rate(now, pace)

    def _adapt(self, now: float, sent_at: float) -> None:
        if self._hold is not None and sent_at <= self._hold.began:
            self._hold.drained(sent_at)  # sent before the first hold: part of its wave
            return
        if self._spell is None or now - self._last_limited > _WINDOW_S:
            self._spell = _Spell(sent_at, self.rate)
        if self.rate is None and self._hold is None:
            self._hold = _Hold(now, sent_at)  # the first 429: hold everyone, measure the wave
            self._pause(now + _HOLD_S)
        self._cut(now, sent_at)

    def _pause(self, until: float) -> None:
        self._paused_until = max(self._paused_until, until)
        self._epoch += 1

    def _end_hold(self, now: float) -> None:
        """After the first hold: pace at what the limiter admitted to the first wave."""
        hold = self._hold
        if hold is None or hold.over or now < hold.began + _HOLD_S:
            return
        hold.over = True
        admitted = self._admitted(hold.first, hold.last)
        if admitted >= _MIN_DRAINED and hold.last > hold.first:
            rate = admitted / (hold.last - hold.first)
        else:
            rate = self._throughput(now)  # too few answers to go by
        if rate > 0:  # else nothing is known yet: the next spell of 429s measures
            self._set_rate(now, max(_MIN_RATE, rate))
            self._discovering = True
        self._spell = None  # the wave was sent by a busy client: measure afresh

    def _cut(self, now: float, sent_at: float) -> None:
        if self._first_success is None or self._last_success is None:
            return  # nothing about what the server admits yet
        if sent_at < self._last_cut:
            return  # sent at the pace before the last cut: one cut a round trip
        if self._last_success <= self._last_cut:
            return  # nothing new since the last cut
        assert self._spell is not None
        span = sent_at - self._spell.began
        if span >= _MIN_SPAN_S:
            measured = self._admitted(self._spell.began, sent_at) / span
        else:
            measured = self._throughput(now)
        self._discovering = False
        paced = max(_MIN_RATE, measured * _DECREASE)
        if self._spell.rate_before is not None:  # later, longer measures may undo earlier cuts
            paced = min(paced, self._spell.rate_before)
        self._set_rate(now, paced)

    def _set_rate(self, now: float, rate: float) -> None:
        if self.rate is None or rate < self.rate:
            self._epoch += 1  # workers waiting for a slot at the old pace take a new one
            self._next_slot = now
        if abs(rate - self._logged_rate) > 0.02 * rate:  # a spell recomputes at every 429
            log.info("rate limited: pacing every worker to %.0f requests/s", rate)
            self._logged_rate = rate
        self.rate = rate
        self._last_cut = self._last_growth = now

    def _admitted(self, first: float, last: float) -> int:
        """Successes among the requests sent between these two times."""
        return sum(1 for t in self._successes if first <= t <= last)

    def _throughput(self, now: float) -> float:
        """Successes a second over the last window (or since the first success)."""
        start = max(now - _WINDOW_S, self._first_success or now)
        return self._admitted(start, now) / max(_MIN_SPAN_S, now - start)

    def _grow(self, now: float) -> None:
        if self.rate is None or not self._adaptive or now - self._last_growth < 0.5:
            return
        # Fast while the first pace is rough, or while 429s are found not to be the job's own.
        fast = self._discovering or self._judge.held_share is not None
        growth = _DISCOVERY_GROWTH_PER_S if fast else _GROWTH_PER_S
        grown = self.rate * (1 + growth * (now - self._last_growth))
        self.rate = grown if self._ceiling is None else min(grown, self._ceiling)
        self._last_growth = now


class _Spell:
    """429s less than ``_WINDOW_S`` apart: measured from when its first 429 was sent."""

    def __init__(self, began: float, rate_before: float | None) -> None:
        self.began = began
        self.rate_before = rate_before


class _Hold:
    """The first 429: when it arrived, and when the first and last 429s of its wave were sent."""

    def __init__(self, began: float, sent_at: float) -> None:
        self.began = began
        self.first = self.last = sent_at
        self.over = False

    def drained(self, sent_at: float) -> None:
        self.first, self.last = min(self.first, sent_at), max(self.last, sent_at)


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
        self._last_failure: str | None = None
        self._give_up: tuple[float, Callable[[], None]] | None = None

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def give_up_at(self, deadline: float, give_up: Callable[[], None]) -> None:
        """While open, call ``give_up`` (which raises) once ``deadline`` has passed."""
        self._give_up = (deadline, give_up)

    async def admit(self) -> None:
        """Return when a request may go: always while closed; one probe at a time while open."""
        while self._opened_at is not None:
            now = time.monotonic()
            if self._give_up is not None and now >= self._give_up[0]:
                self._give_up[1]()
            if now - self._opened_at > self._max_outage_s:
                raise ApiUnavailable(
                    f"the API has failed every request for over {self._max_outage_s:.0f} s "
                    f"(the last: {self._last_failure}); resume once it is back"
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

    def on_failure(self, detail: str | None = None) -> None:
        """A transient failure; ``detail`` says what went wrong (the last one is reported)."""
        self._failures += 1
        self._last_failure = detail or self._last_failure
        now = time.monotonic()
        if self._opened_at is not None:
            self._probing = False
            self._next_probe = now + self._probe_every_s
        elif self._failures >= self._threshold:
            self._opened_at, self._next_probe = now, now + self._probe_every_s
            log.warning(
                "the API failed %d requests in a row (the last: %s): pausing, one probe every "
                "%.0f s (the run stops after %.0f s of this)",
                self._failures,
                self._last_failure,
                self._probe_every_s,
                self._max_outage_s,
            )
