"""Requests and latency over a run, a point a second: what report.html draws.

Nothing is added to the per-request path: a task on the event loop reads the sender's running
totals (``SendStats``) once a second, and the latency histogram's buckets, whose difference
from the last reading gives that second's percentiles. At most ``MAX_POINTS`` points are
kept, whatever the run's length: when they are full, neighbours are merged two by two and
each point spans twice as long from then on (a merged point's median is the mean of the two,
weighted by their answers, and its p95 the larger: a chart's approximation).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from customer_import.send.stats import LatencyHistogram, SendStats

MAX_POINTS: Final = 600
INTERVAL_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class Point:
    """What the requests did from ``start_s`` to ``start_s + span_s`` (seconds from the
    first sample)."""

    start_s: float
    span_s: float
    requests: int
    """Requests made (retries included)."""
    rate_limited: int
    """429 answers."""
    answered: int
    """Requests that ended (with an answer or an error): the latency's samples."""
    p50_ms: float | None
    p95_ms: float | None

    @property
    def per_s(self) -> float:
        return self.requests / self.span_s if self.span_s > 0 else 0.0


def merged(a: Point, b: Point) -> Point:
    answered = a.answered + b.answered
    medians = [(p.p50_ms, p.answered) for p in (a, b) if p.p50_ms is not None]
    p50 = sum(m * n for m, n in medians) / answered if medians and answered else None
    highs = [p.p95_ms for p in (a, b) if p.p95_ms is not None]
    return Point(
        a.start_s,
        a.span_s + b.span_s,
        a.requests + b.requests,
        a.rate_limited + b.rate_limited,
        answered,
        None if p50 is None else round(p50, 2),
        max(highs) if highs else None,
    )


class Timeline:
    """Samples a sender's ``SendStats`` into points, in bounded memory."""

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self._max = max_points - max_points % 2  # merged two by two when full
        self._points: list[Point] = []
        self._open: Point | None = None  # samples not yet a whole point
        self._open_samples = 0
        self._per_point = 1  # samples a point: doubles each time the points are merged
        self._started = 0.0
        self._last = (0.0, 0, 0)  # when, requests, rate limited
        self._buckets: dict[int, int] = {}

    @property
    def points(self) -> list[Point]:
        return self._points + ([self._open] if self._open is not None else [])

    @contextmanager
    def sampling(self, stats: SendStats, interval_s: float = INTERVAL_S) -> Iterator[None]:
        """Meanwhile (on a running event loop), a sample every ``interval_s``; a last one at
        the end."""
        self._started = time.monotonic()
        self._last = (self._started, stats.requests, stats.rate_limited)
        self._buckets = stats.latency.buckets
        task = asyncio.create_task(self._sample_every(stats, interval_s))
        try:
            yield
        finally:
            task.cancel()
            self.sample(stats)

    async def _sample_every(self, stats: SendStats, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.sample(stats)

    def sample(self, stats: SendStats, now: float | None = None) -> None:
        """What ``stats`` counted since the last sample, as one sample."""
        now = time.monotonic() if now is None else now
        when, requests, limited = self._last
        buckets = stats.latency.buckets
        recent = LatencyHistogram.of(
            {
                b: n - self._buckets.get(b, 0)
                for b, n in buckets.items()
                if n != self._buckets.get(b)
            }
        )
        self._last, self._buckets = (now, stats.requests, stats.rate_limited), buckets
        self._add(
            Point(
                round(when - self._started, 3),
                round(now - when, 3),
                stats.requests - requests,
                stats.rate_limited - limited,
                recent.count,
                recent.percentile(50),
                recent.percentile(95),
            )
        )

    def _add(self, sample: Point) -> None:
        self._open = sample if self._open is None else merged(self._open, sample)
        self._open_samples += 1
        if self._open_samples < self._per_point:
            return
        self._points.append(self._open)
        self._open, self._open_samples = None, 0
        if len(self._points) >= self._max:
            pairs = zip(self._points[::2], self._points[1::2], strict=True)  # an even count
            self._points = [merged(a, b) for a, b in pairs]
            self._per_point *= 2
