"""The pacer's rate discovery, on virtual time.

Workers that wait for the pacer run on an event loop whose clock moves only when every task
is waiting: it jumps to the next wake-up. So the tests follow the pacer's decisions to the
microsecond without sleeping, and nothing depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import itertools
import selectors
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from customer_import.send.flow import Pacer

T = TypeVar("T")


class _VirtualSelector(selectors.BaseSelector):
    """No I/O ever happens: a wait with a timeout moves the clock forward by it."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, 0, events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[Any]:
        assert timeout is not None, "every task waits for nothing: deadlock"
        self._clock.now += max(0.0, timeout)
        return []

    def get_map(self) -> dict[Any, selectors.SelectorKey]:
        return self._keys


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def run(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``main()`` on an event loop whose time is this clock."""
        loop = asyncio.SelectorEventLoop(_VirtualSelector(self))
        loop.time = self  # type: ignore[method-assign]
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()


def succeed(pacer: Pacer, clock: VirtualClock, count: int, per_s: float) -> None:
    """``count`` successes, one every 1/per_s seconds, each answered as soon as it was sent."""
    for _ in range(count):
        clock.now += 1 / per_s
        pacer.on_success(sent_at=clock.now)


async def send_times(
    pacer: Pacer, workers: int, between: Awaitable[None] | None = None
) -> list[float]:
    """When each of ``workers`` concurrent requests goes out; ``between`` runs once every
    worker has taken its slot."""
    tasks = [asyncio.create_task(pacer.before_request()) for _ in range(workers)]
    await asyncio.sleep(0)
    if between is not None:
        await between
    return sorted(await asyncio.gather(*tasks))


# --- before any 429 ---


def test_an_api_without_a_limit_is_never_paced() -> None:
    clock = VirtualClock()
    pacer = Pacer(clock=clock)
    succeed(pacer, clock, 5000, per_s=2000)
    started = clock.now

    sent = clock.run(lambda: send_times(pacer, 64))

    assert pacer.rate is None
    assert sent == [started] * 64


# --- the first 429: a hold while the wave in flight is answered, then a rough pace ---


def first_wave(pacer: Pacer, clock: VirtualClock) -> float:
    """A token bucket's burst runs out while 31 requests are in flight, sent 1 ms apart: the
    limiter admits every third (10 of them) and answers the rest 429, the first one first.
    Returns the pace the limiter admitted them at, by when they were sent."""
    succeed(pacer, clock, 500, per_s=1000)
    wave = [clock.now + (k + 1) / 1000 for k in range(31)]
    clock.now = wave[-1] + 0.010  # answers come back 10 ms after the last one went out
    pacer.on_rate_limited(retry_after=1, sent_at=wave[0])
    for k, sent_at in enumerate(wave[1:], start=1):
        if k % 3 == 1:
            pacer.on_success(sent_at=sent_at)
        else:
            pacer.on_rate_limited(retry_after=1, sent_at=sent_at)
    return 10 / (wave[-1] - wave[0])


def test_the_first_429_holds_every_worker_until_the_requests_in_flight_are_answered() -> None:
    clock = VirtualClock()
    pacer = Pacer(clock=clock)
    first_wave(pacer, clock)
    held_at = clock.now

    sent = clock.run(lambda: send_times(pacer, 4))

    assert min(sent) >= held_at + 0.1


def test_after_the_hold_every_worker_is_paced_at_what_the_limiter_admitted_to_the_wave() -> None:
    clock = VirtualClock()
    pacer = Pacer(clock=clock)
    admitted = first_wave(pacer, clock)  # about 333 a second, while 1000 went out

    sent = clock.run(lambda: send_times(pacer, 4))

    assert pacer.rate == pytest.approx(admitted)
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert gaps[1:] == pytest.approx([1 / admitted] * 2)  # one request of burst, then paced


def test_a_429_before_any_success_leaves_the_pace_to_the_next_spell() -> None:
    clock = VirtualClock()
    pacer = Pacer(clock=clock)
    pacer.on_rate_limited(retry_after=1, sent_at=clock.now - 0.01)

    clock.run(lambda: send_times(pacer, 1))

    assert pacer.rate is None  # pacing at 1 request/s would take minutes to climb back


def test_after_the_first_hold_the_pace_grows_fast_until_the_next_spell_then_slowly() -> None:
    clock = VirtualClock()
    pacer = Pacer(clock=clock)
    first_wave(pacer, clock)
    clock.run(lambda: send_times(pacer, 1))
    rough = pacer.rate or 0

    succeed(pacer, clock, 10 * 300, per_s=300)  # ten seconds without a 429
    assert (pacer.rate or 0) > 1.4 * rough  # about 5 % a second: the first figure was rough

    pacer.on_rate_limited(retry_after=1, sent_at=clock.now)
    cut = pacer.rate or 0
    succeed(pacer, clock, 10 * 300, per_s=300)
    assert cut < (pacer.rate or 0) < 1.06 * cut  # 0.5 % a second, near the limit


# --- spells of 429s once paced ---


def test_a_spell_is_measured_by_when_requests_were_sent_not_when_answers_came() -> None:
    clock = VirtualClock()
    pacer = Pacer(ceiling=1000, clock=clock)
    succeed(pacer, clock, 1000, per_s=500)
    began = clock.now + 0.01
    pacer.on_rate_limited(retry_after=1, sent_at=began)
    # 60 requests go out over 0.2 s (300 a second get through); a busy client reads all
    # their answers at once, 0.1 s later: counted on arrival they would be 240 a second
    clock.now = began + 0.3
    for k in range(1, 61):
        pacer.on_success(sent_at=began + k * 0.2 / 60)
    pacer.on_rate_limited(retry_after=1, sent_at=began + 0.2)

    assert pacer.rate == pytest.approx(0.95 * 300)


def test_later_429s_of_a_spell_measure_over_its_whole_span_and_never_compound() -> None:
    clock = VirtualClock()
    pacer = Pacer(ceiling=1000, clock=clock)
    succeed(pacer, clock, 1000, per_s=500)
    pacer.on_rate_limited(retry_after=1, sent_at=clock.now)
    assert pacer.rate == pytest.approx(
        0.95 * 500, rel=0.01
    )  # at once: 95 % of the recent throughput
    for _ in range(3):
        succeed(pacer, clock, 60, per_s=300)
        pacer.on_rate_limited(retry_after=1, sent_at=clock.now)
        assert pacer.rate == pytest.approx(0.95 * 300, rel=0.02)


def test_a_longer_measure_of_the_same_spell_replaces_an_early_noisy_one() -> None:
    clock = VirtualClock()
    pacer = Pacer(ceiling=1000, clock=clock)
    succeed(pacer, clock, 1000, per_s=500)
    began = clock.now + 0.01
    pacer.on_rate_limited(retry_after=1, sent_at=began)
    clock.now = began
    succeed(pacer, clock, 25, per_s=250)  # the first tenth of a second looks like 250 a second
    pacer.on_rate_limited(retry_after=1, sent_at=clock.now)
    assert pacer.rate == pytest.approx(0.95 * 250, rel=0.01)
    succeed(pacer, clock, 70, per_s=350)
    pacer.on_rate_limited(retry_after=1, sent_at=clock.now)

    assert pacer.rate == pytest.approx(0.95 * 95 / 0.3, rel=0.01)  # over the whole spell


def test_a_cut_retimes_the_workers_already_waiting_for_a_slot() -> None:
    clock = VirtualClock()
    pacer = Pacer(ceiling=1000, clock=clock)
    succeed(pacer, clock, 200, per_s=100)
    cut_at = clock.now

    async def cut() -> None:
        pacer.on_rate_limited(retry_after=None, sent_at=cut_at)  # to 95 a second

    sent = clock.run(lambda: send_times(pacer, 5, between=cut()))

    # two went out at once, three had slots 1 ms apart: they go at the new pace instead
    assert pacer.rate == pytest.approx(95, rel=0.01)
    assert pacer.rate is not None
    assert sent[-1] == pytest.approx(cut_at + 2 / pacer.rate)


def test_a_quota_window_pauses_the_workers_already_waiting_for_a_slot() -> None:
    clock = VirtualClock()
    pacer = Pacer(ceiling=1000, clock=clock)
    succeed(pacer, clock, 200, per_s=100)
    paused_at = clock.now

    async def quota() -> None:
        pacer.on_rate_limited(retry_after=30, sent_at=paused_at)

    sent = clock.run(lambda: send_times(pacer, 5, between=quota()))

    assert sent[:2] == [paused_at, paused_at]  # already sent
    assert min(sent[2:]) >= paused_at + 30
