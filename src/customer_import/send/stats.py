"""What the sender counts: requests, retries, 429s, requests in flight, latency."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from customer_import.contracts import Latency, SendFacts


class LatencyHistogram:
    """Fixed log-spaced buckets (about 2 % wide): percentiles in constant memory."""

    _GROWTH: Final = 1.02
    _PER_LOG: Final = 1 / math.log(_GROWTH)
    _LOG_MIN: Final = math.log(0.01)

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0

    @classmethod
    def of(cls, buckets: dict[int, int] | dict[str, int]) -> LatencyHistogram:
        """A histogram of ``buckets`` (``buckets``' form; keys may be JSON's strings)."""
        histogram = cls()
        histogram.add_buckets({int(k): int(v) for k, v in buckets.items()})
        return histogram

    @property
    def buckets(self) -> dict[int, int]:
        """Counts by bucket: another histogram of the same buckets can add them."""
        return dict(self._counts)

    def add_buckets(self, buckets: dict[int, int]) -> None:
        for bucket, count in buckets.items():
            self._counts[bucket] = self._counts.get(bucket, 0) + count
            self.count += count

    def latency(self) -> Latency:
        return Latency(*(self.percentile(q) for q in (50, 95, 99)))

    def add(self, ms: float) -> None:
        bucket = 0 if ms <= 0.01 else int((math.log(ms) - self._LOG_MIN) * self._PER_LOG) + 1
        self._counts[bucket] = self._counts.get(bucket, 0) + 1
        self.count += 1

    def percentile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank, seen = q / 100 * self.count, 0
        for bucket in sorted(self._counts):
            seen += self._counts[bucket]
            if seen >= rank:
                return round(0.01 * self._GROWTH**bucket, 2)
        return None


@dataclass(slots=True)
class SendStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def facts(self) -> SendFacts:
        return SendFacts(
            self.requests,
            self.retries,
            self.rate_limited,
            self.max_in_flight,
            self.latency.latency(),
            self.latency.buckets,
        )
