"""A run's attempts: what this one did, and what all of them did together.

A resumed run is attempted more than once. summary.json's top-level ``requests``, ``retries``,
``duration_s``... add up every attempt (the whole run, as its counts do); ``this_attempt``
holds this one's alone. The journal keeps the sum of the attempts before this one (meta
``attempts``), latency buckets included, so whole-run percentiles are exact to a bucket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from customer_import.contracts import Attempt, SendFacts
from customer_import.record.journal import Journal
from customer_import.send.stats import LatencyHistogram

_META: Final = "attempts"


def per_s(records: int, duration_s: float) -> float | None:
    """Records a second: records given an outcome over the time it took."""
    return round(records / duration_s, 1) if duration_s > 0 else None


def attempt_of(
    sent: SendFacts, duration_s: float, records: int, started_at: str, finished_at: str
) -> Attempt:
    """This attempt's figures (``records``: input records it gave an outcome)."""
    return Attempt(
        requests=sent.requests,
        retries=sent.retries,
        rate_limited=sent.rate_limited,
        max_in_flight=sent.max_in_flight,
        duration_s=round(duration_s, 3),
        records=records,
        rows_per_s=per_s(records, duration_s),
        latency_ms=sent.latency,
        started_at=started_at,
        finished_at=finished_at,
    )


@dataclass(frozen=True, slots=True)
class WholeRun:
    """Every attempt of the run so far, this one included."""

    attempts: int
    figures: Attempt


def record_attempt(journal: Journal, attempt: Attempt, buckets: dict[int, int]) -> WholeRun:
    """Adds this attempt to those the journal holds, keeps the sum there (a resume adds to
    it), and returns it. ``buckets``: this attempt's latency histogram."""
    earlier = _read(journal.get_meta(_META))
    latency = LatencyHistogram.of(earlier.get("latency_buckets", {}))
    latency.add_buckets(buckets)
    total: dict[str, Any] = {
        "attempts": int(earlier.get("attempts", 0)) + 1,
        **{key: int(earlier.get(key, 0)) + getattr(attempt, key) for key in _ADDED},
        "max_in_flight": max(int(earlier.get("max_in_flight", 0)), attempt.max_in_flight),
        "duration_s": round(float(earlier.get("duration_s", 0)) + attempt.duration_s, 3),
        "latency_buckets": latency.buckets,
    }
    journal.set_meta(**{_META: json.dumps(total)})
    figures = Attempt(
        requests=total["requests"],
        retries=total["retries"],
        rate_limited=total["rate_limited"],
        max_in_flight=total["max_in_flight"],
        duration_s=total["duration_s"],
        records=total["records"],
        rows_per_s=per_s(total["records"], total["duration_s"]),
        latency_ms=latency.latency(),
        started_at=journal.get_meta("started_at") or attempt.started_at,
        finished_at=attempt.finished_at,
    )
    return WholeRun(total["attempts"], figures)


_ADDED: Final = ("requests", "retries", "rate_limited", "records")


def _read(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
