"""summary.json: what a run did, in numbers; counts come from the journal, those of this
attempt alone (``records_this_run``) from the run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from customer_import.sender import SendStats
from customer_import.state import Journal

COUNTED_STATUSES: Final = ("created", "updated", "unchanged", "duplicate", "valid", "rejected")


@dataclass(frozen=True, slots=True)
class RunFacts:
    job: str
    status: str
    message: str | None
    dry_run: bool
    total: int
    records_this_run: int  # outcomes this attempt gave, not those of earlier ones (a resume)
    duration_s: float
    input_path: str
    input_size: int
    input_digest: str
    encoding: str
    delimiter: str | None
    base_url: str
    out_dir: str


def build_summary(facts: RunFacts, journal: Journal, stats: SendStats) -> dict[str, Any]:
    by_status = journal.count_by_status()
    counts = {s: by_status.get(s, 0) for s in COUNTED_STATUSES}
    done = sum(by_status.values())
    latency = {f"p{q}": stats.latency.percentile(q) for q in (50, 95, 99)}
    return {
        "status": facts.status,
        "message": facts.message,
        "job": facts.job,
        "dry_run": facts.dry_run,
        "rows": facts.total,
        **counts,
        "pending": max(0, facts.total - done),
        "rejected_by_stage": journal.count_rejects_by_stage(),
        "requests": stats.requests,
        "retries": stats.retries,
        "rate_limited": stats.rate_limited,
        "max_in_flight": stats.max_in_flight,
        "duration_s": round(facts.duration_s, 3),
        "records_this_run": facts.records_this_run,
        "rows_per_s": per_s(facts.records_this_run, facts.duration_s),
        "latency_ms": latency,
        "input": {"path": facts.input_path, "size": facts.input_size, "hash": facts.input_digest},
        "encoding": facts.encoding,
        "delimiter": facts.delimiter,
        "base_url": facts.base_url,
        "out_dir": facts.out_dir,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def per_s(records: int, duration_s: float) -> float | None:
    """Records a second, given ``records_this_run``: an interrupted run or a resume does not
    count what it did not do."""
    return round(records / duration_s, 1) if duration_s > 0 else None
