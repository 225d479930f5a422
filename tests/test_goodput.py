"""The pacer under two kinds of 429, on virtual time: a limiter of the job's own, which
slowing down satisfies, and a quota shared with others, which answers 429 to half the
requests whatever the pace. The first is met just under its limit; the second is not
chased down to a request a second."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from customer_import.send.flow import Pacer
from customer_import.send.goodput import GoodputJudge
from tests.test_flow import VirtualClock

RTT_S = 0.010
WORKERS = 16


def simulate(
    clock: VirtualClock, limited: Callable[[float], bool], records: int, limit_s: float
) -> tuple[int, int, float]:
    """``WORKERS`` workers send until ``records`` succeed or ``limit_s`` passes: returns
    (successes, 429s, seconds)."""
    pacer = Pacer(clock=clock)
    started = clock.now
    counts = {"ok": 0, "limited": 0}

    async def worker() -> None:
        while counts["ok"] < records and clock.now - started < limit_s:
            sent = await pacer.before_request()
            await asyncio.sleep(RTT_S)
            if limited(sent):
                counts["limited"] += 1
                pacer.on_rate_limited(retry_after=0.0, sent_at=sent)
                await asyncio.sleep(0)  # Retry-After: 0
            else:
                counts["ok"] += 1
                pacer.on_success(sent_at=sent)

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(WORKERS)))

    clock.run(main)
    return counts["ok"], counts["limited"], clock.now - started


def test_a_shared_quota_that_429s_half_the_requests_is_not_chased_down() -> None:
    clock = VirtualClock()
    chance = random.Random(7)

    ok, limited, seconds = simulate(clock, lambda sent: chance.random() < 0.5, 3_000, 240)

    assert ok >= 3_000
    assert seconds < 60  # unpaced, 16 workers at 10 ms would take 0.4 s; at 1/s, an hour
    assert 0.4 < limited / (ok + limited) < 0.6


def test_a_limiter_of_the_jobs_own_is_still_met_just_under_its_limit() -> None:
    clock = VirtualClock()
    bucket = {"tokens": 30.0, "at": clock.now}
    rate = 300.0

    def limited(sent: float) -> bool:
        bucket["tokens"] = min(30.0, bucket["tokens"] + (sent - bucket["at"]) * rate)
        bucket["at"] = sent
        if bucket["tokens"] >= 1:
            bucket["tokens"] -= 1
            return False
        return True

    ok, limited_count, seconds = simulate(clock, limited, 30_000, 600)

    assert ok / seconds > 0.95 * rate
    assert limited_count / (ok + limited_count) < 0.02


@pytest.mark.parametrize(
    ("windows", "held"),
    [
        # slowing from 1000/s to 500/s left half the answers 429: hold 1000/s, the best
        ([(1000, 500, 500), (500, 250, 250)], 1000.0),
        # slowing lowered the share: a limit of the job's own, no judgement
        ([(1000, 300, 700), (500, 480, 20)], None),
        # few 429s: a limit touched now and then
        ([(1000, 970, 30), (500, 485, 15)], None),
    ],
)
def test_the_judge_holds_the_pace_with_the_most_successes_only_when_slowing_did_not_help(
    windows: list[tuple[int, int, int]], held: float | None
) -> None:
    judge, now, verdict = GoodputJudge(), 0.0, None
    for total, ok, limited in windows:
        answers = [False] * ok + [True] * limited
        random.Random(total).shuffle(answers)
        for k, was_limited in enumerate(answers):
            window = judge.answered(now + k / total, was_limited)
            if window is not None and verdict is None:
                verdict = judge.pace_to_hold(window)
        now += 1.0
    for later in range(3):  # the last windows' answers are all in once later ones are sent
        window = judge.answered(now + later * 0.25, False)
        if window is not None and verdict is None:
            verdict = judge.pace_to_hold(window)
    assert verdict == (pytest.approx(held, rel=0.05) if held else None)
