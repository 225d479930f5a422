"""Trouble the sandbox rehearses on demand: everything that can go wrong between job and API.

All switches live here so a reader sees every way the sandbox can misbehave in one place. They
apply to ``POST /customers/add-update`` only. None is on by default. The order in which a
request meets them is decided in ``app.SandboxApi.add_update`` (and told in the README).
"""

from __future__ import annotations

import enum
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Final

DEFAULT_HANG_MS = 60_000.0
DEFAULT_REDIRECT_STATUS = 301
REDIRECT_STATUSES: Final = (301, 302, 303, 307, 308)
#: ``--retry-after date+N``: an HTTP date N seconds after each answer (a fixed date goes stale).
DATE_FROM_NOW: Final = re.compile(r"date\+(\d{1,9})")


class Drop(enum.Enum):
    """When a request drawn by ``--reset-rate`` loses its connection."""

    BEFORE_WRITE = "before write"
    """Nothing is written: a plain network failure."""
    AFTER_WRITE = "after write"
    """The write is applied and committed, then the answer is lost: a retry finds the customer."""


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
    """Seeds every random draw so a rehearsal can be repeated."""
    fail_first: int = 0
    """The first N add-update requests (past credentials and rate limit) are answered 503."""
    conflict_rate: float = 0.0
    """Fraction answered 409 DUPLICATE ("two writes raced"), without writing."""
    reset_rate: float = 0.0
    """Fraction whose connection is closed without an answer: half before, half after the write."""
    hang_rate: float = 0.0
    """Fraction that are written, then held for ``hang_ms`` before the answer (client timeouts)."""
    hang_ms: float = DEFAULT_HANG_MS
    """How long a request drawn by ``hang_rate`` is held."""
    drip_ms: float = 0.0
    """Answers send their headers at once, then the body one byte every ``drip_ms`` (0: off)."""
    drip_rate: float = 1.0
    """Fraction of answers dripped when ``drip_ms`` is on (default: every answer)."""
    non_json_2xx: float = 0.0
    """Fraction answered 200 with an HTML page, as something in front of the API would: the
    request never reaches the API, nothing is written."""
    html_4xx: float = 0.0
    """Fraction answered 400 with an HTML page instead of the API's JSON envelope (a proxy)."""
    redirect: str | None = None
    """Every request is answered ``redirect_status`` with this ``Location``; nothing written."""
    redirect_status: int = DEFAULT_REDIRECT_STATUS
    """301, 302, 303, 307 or 308."""
    rate_limited_share: float = 0.0
    """Fraction answered 429 whatever the client's pace, as a quota shared with other clients."""
    retry_after: str | None = None
    """The ``Retry-After`` of every 429 (``--rate-limit``'s and ``--rate-limited-share``'s),
    sent as written, or ``date+N``: an HTTP date N seconds after the answer. None: the
    bucket's wait in whole seconds, and ``0`` for the shared quota's."""

    def describe(self) -> str:
        """The switched-on faults in words, empty when none is on."""
        parts = []
        if self.latency_ms:
            parts.append(f"latency {self.latency_ms:g} ms")
        if self.redirect is not None:
            parts.append(f"redirect {self.redirect_status} to {self.redirect}")
        if self.rate_limit is not None:
            parts.append(f"rate limit {self.rate_limit:g}/s")
        if self.fail_first:
            parts.append(f"503 for the first {self.fail_first} requests")
        rates = (
            ("HTML 400 rate", self.html_4xx),
            ("HTML 200 rate", self.non_json_2xx),
            ("429 share", self.rate_limited_share),
            ("fail rate", self.fail_rate),
            ("conflict rate", self.conflict_rate),
            ("reset rate", self.reset_rate),
            ("hang rate", self.hang_rate),
        )
        for name, rate in rates:
            if rate:
                parts.append(f"{name} {rate:g}")
                if name == "hang rate":
                    parts[-1] += f" ({self.hang_ms:g} ms)"
        if self.retry_after is not None:
            parts.append(f"Retry-After {self.retry_after}")
        if self.drip_ms:
            parts.append(f"drip a byte every {self.drip_ms:g} ms (rate {self.drip_rate:g})")
        if any(rate for _, rate in rates) or (self.drip_ms and self.drip_rate < 1):
            parts.append(f"seed {self.seed}")
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


class _Draw:
    """A seeded yes/no draw at a fixed rate; each switch has its own stream.

    Separate streams keep a switch's sequence the same whatever other switches are on.
    """

    def __init__(self, rate: float, seed: int | None, name: str) -> None:
        self.rate = rate
        self.rng = random.Random(None if seed is None else f"{seed}/{name}")

    def __call__(self) -> bool:
        return bool(self.rate) and self.rng.random() < self.rate


class Faults:
    """The live fault state of one sandbox process."""

    def __init__(self, settings: FaultSettings) -> None:
        self.latency_s = settings.latency_ms / 1000
        self.hang_s = settings.hang_ms / 1000
        self._fail_rate = settings.fail_rate
        self._rng = random.Random(settings.seed)  # --fail-rate's stream, as it always was
        self._bucket = None if settings.rate_limit is None else TokenBucket(settings.rate_limit)
        self.fail_first_left = settings.fail_first
        self._conflict = _Draw(settings.conflict_rate, settings.seed, "conflict")
        self._reset = _Draw(settings.reset_rate, settings.seed, "reset")
        self._hang = _Draw(settings.hang_rate, settings.seed, "hang")
        self.drip_s = settings.drip_ms / 1000
        self._drip = _Draw(settings.drip_rate if settings.drip_ms else 0.0, settings.seed, "drip")
        self._non_json_2xx = _Draw(settings.non_json_2xx, settings.seed, "non-json-2xx")
        self._html_4xx = _Draw(settings.html_4xx, settings.seed, "html-4xx")
        self._shared_quota = _Draw(settings.rate_limited_share, settings.seed, "429-share")
        self.redirect = settings.redirect
        self.redirect_status = settings.redirect_status
        self._retry_after = settings.retry_after
        self.key_revoked = False

    def failure_status(self) -> int | None:
        """503 while ``fail_first`` lasts; 500 or 503 when drawn by ``fail_rate``; else None."""
        if self.fail_first_left > 0:
            self.fail_first_left -= 1
            return 503
        if self._fail_rate and self._rng.random() < self._fail_rate:
            return self._rng.choice((500, 503))
        return None

    def conflict(self) -> bool:
        """True when this request is drawn to be answered 409 DUPLICATE."""
        return self._conflict()

    def drop(self) -> Drop | None:
        """When this request's connection is to be closed without an answer, if it is."""
        if not self._reset():
            return None
        return Drop.BEFORE_WRITE if self._reset.rng.random() < 0.5 else Drop.AFTER_WRITE

    def hang(self) -> bool:
        """True when this request is to be held ``hang_s`` after its write, before answering."""
        return self._hang()

    def retry_after_s(self) -> int | None:
        """None when the rate limit lets this request through, else whole seconds to wait (>= 1)."""
        if self._bucket is None:
            return None
        wait_s = self._bucket.take()
        return max(1, math.ceil(wait_s)) if wait_s else None

    def shared_quota(self) -> bool:
        """True when this request is drawn to be answered 429 whatever the pace."""
        return self._shared_quota()

    def retry_after_header(self, wait_s: int) -> str:
        """The ``Retry-After`` of a 429: ``--retry-after`` when given, else ``wait_s``."""
        value = self._retry_after
        if value is None:
            return str(wait_s)
        from_now = DATE_FROM_NOW.fullmatch(value)
        if from_now:
            return formatdate(time.time() + int(from_now.group(1)), usegmt=True)
        return value

    def non_json_2xx(self) -> bool:
        """True when this request is drawn to be answered 200 with an HTML page."""
        return self._non_json_2xx()

    def html_4xx(self) -> bool:
        """True when this request is drawn to be answered 400 with an HTML page."""
        return self._html_4xx()

    def drip(self) -> bool:
        """True when this request's answer is to be sent a byte every ``drip_s``."""
        return self._drip()

    def revoke_key(self) -> None:
        """Answer every further add-update request 401, as after a key rotation."""
        self.key_revoked = True

    def restore_key(self) -> None:
        """Accept the key again (``POST /_sandbox/reset``), as a server started afresh would."""
        self.key_revoked = False
