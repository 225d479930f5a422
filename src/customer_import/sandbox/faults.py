"""Trouble the sandbox rehearses on demand: latency, random failures, a rate limit, a revoked key.

All switches live here so a reader sees every way the sandbox can misbehave in one place. They
apply to ``POST /customers/add-update`` only. None is on by default.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FaultSettings:
    """The fault switches, as given on the command line."""

    latency_ms: float = 0.0
    """Added to every add-update request before it is handled."""
    fail_rate: float = 0.0
    """Fraction (0..1) of add-update requests answered 500 or 503 before anything is written."""
    rate_limit: float | None = None
    """Sustained add-update requests per second; beyond it requests are answered 429."""
    seed: int | None = None
    """Seeds the failure draws so a rehearsal can be repeated."""

    def describe(self) -> str:
        """The switched-on faults in words, empty when none is on."""
        parts = []
        if self.latency_ms:
            parts.append(f"latency {self.latency_ms:g} ms")
        if self.fail_rate:
            parts.append(f"fail rate {self.fail_rate:g} (seed {self.seed})")
        if self.rate_limit is not None:
            parts.append(f"rate limit {self.rate_limit:g}/s")
        return ", ".join(parts)


class TokenBucket:
    """Allows ``rate`` requests per second on average, with bursts of up to one second's worth.

    A one-second burst matches how people read "R requests per second": a client that sends at
    most R in any second is never limited, whatever its concurrency.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()

    def take(self) -> float:
        """Take one token: 0.0 when granted, else the seconds until one will be available."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


class Faults:
    """The live fault state of one sandbox process."""

    def __init__(self, settings: FaultSettings) -> None:
        self.latency_s = settings.latency_ms / 1000
        self._fail_rate = settings.fail_rate
        self._rng = random.Random(settings.seed)
        self._bucket = None if settings.rate_limit is None else TokenBucket(settings.rate_limit)
        self.key_revoked = False

    def failure_status(self) -> int | None:
        """500 or 503 when this request is drawn to fail, else None."""
        if self._fail_rate and self._rng.random() < self._fail_rate:
            return self._rng.choice((500, 503))
        return None

    def retry_after_s(self) -> int | None:
        """None when the rate limit lets this request through, else whole seconds to wait (>= 1)."""
        if self._bucket is None:
            return None
        wait_s = self._bucket.take()
        return max(1, math.ceil(wait_s)) if wait_s else None

    def revoke_key(self) -> None:
        """Answer every further add-update request 401, as after a key rotation."""
        self.key_revoked = True
