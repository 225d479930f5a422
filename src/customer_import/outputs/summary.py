"""summary.json: what a run did, in numbers. Counts come from the journal (the whole input,
earlier attempts included); what this attempt alone did comes from the run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from customer_import.config import OutputConfig
from customer_import.contracts import (
    Attempt,
    Ending,
    IncrementalFacts,
    InputFacts,
    Latency,
    RecordStatus,
    RunStatus,
    RunSummary,
    SendFacts,
)
from customer_import.outputs.attempts import attempt_of, record_attempt
from customer_import.record.journal import Journal
from customer_import.send.timeline import Point
from customer_import.transform.fieldstats import FieldStats


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """What a run is: known before it starts."""

    job: str
    dry_run: bool
    input: InputFacts
    encoding: str
    delimiter: str | None
    base_url: str
    out_dir: str
    shard: str | None = None
    metrics_file: Path | None = None
    """``[output] metrics_file``: where the outputs stage writes the run's metrics."""
    output: OutputConfig | None = None
    """``[output]``: the results' and rejects' format (None: CSV, as the defaults say)."""
    run_id: str | None = None
    refeed_of: str | None = None


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the run knows at its end that the journal does not."""

    ending: Ending
    total: int
    records_this_run: int
    """Outcomes this attempt gave, not those of earlier ones (a resume)."""
    duration_s: float
    sent: SendFacts
    warnings: list[str] = field(default_factory=list)
    incremental: IncrementalFacts | None = None
    timeline: Sequence[Point] = ()
    """Requests and latency over the run, for report.html."""
    field_stats: FieldStats | None = None
    """Per-field counts of the records this attempt read, for report.html."""


def build_summary(run: RunIdentity, facts: RunFacts, journal: Journal) -> RunSummary:
    """The summary; this attempt's figures are added to the journal's sum of the attempts
    (``attempts.record_attempt``): call it once an attempt."""
    by_status = journal.count_by_status()
    finished_at = datetime.now(UTC)
    started_at = finished_at - timedelta(seconds=facts.duration_s)
    attempt = attempt_of(
        facts.sent,
        facts.duration_s,
        facts.records_this_run,
        started_at.isoformat(timespec="seconds"),
        finished_at.isoformat(timespec="seconds"),
    )
    whole = record_attempt(journal, attempt, facts.sent.latency_buckets)
    run_figures = whole.figures
    return RunSummary(
        status=facts.ending.status,
        message=facts.ending.message,
        job=run.job,
        dry_run=run.dry_run,
        rows=facts.total,
        counts={s: by_status.get(s, 0) for s in RecordStatus},
        pending=max(0, facts.total - sum(by_status.values())),
        rejected_by_stage=journal.count_rejects_by_stage(),
        omitted=journal.count_omitted(),
        requests=run_figures.requests,
        retries=run_figures.retries,
        rate_limited=run_figures.rate_limited,
        max_in_flight=run_figures.max_in_flight,
        duration_s=run_figures.duration_s,
        rows_per_s=run_figures.rows_per_s,
        latency_ms=run_figures.latency_ms,
        started_at=run_figures.started_at,
        attempts=whole.attempts,
        this_attempt=attempt,
        input=run.input,
        encoding=run.encoding,
        delimiter=run.delimiter,
        base_url=run.base_url,
        out_dir=run.out_dir,
        finished_at=attempt.finished_at,
        shard=run.shard,
        warnings=facts.warnings,
        incremental=facts.incremental,
        run_id=run.run_id,
        refeed_of=run.refeed_of,
    )


def summary_json(summary: RunSummary) -> dict[str, Any]:
    """summary.json's object: its keys, in its order."""
    out: dict[str, Any] = {
        "status": str(summary.status),
        "message": summary.message,
        "job": summary.job,
        "run_id": summary.run_id,
        "refeed_of": summary.refeed_of,
        "dry_run": summary.dry_run,
        "rows": summary.rows,
        **{str(s): summary.count(s) for s in RecordStatus},
        "pending": summary.pending,
        "rejected_by_stage": dict(summary.rejected_by_stage),
        "omitted": dict(summary.omitted),
        "requests": summary.requests,
        "retries": summary.retries,
        "rate_limited": summary.rate_limited,
        "max_in_flight": summary.max_in_flight,
        "duration_s": summary.duration_s,
        "rows_per_s": summary.rows_per_s,
        "latency_ms": _fields(summary.latency_ms),
        "attempts": summary.attempts,
        "started_at": summary.started_at,
        "this_attempt": attempt_json(summary.this_attempt),
        "input": None if summary.input is None else _fields(summary.input),
        "encoding": summary.encoding,
        "delimiter": summary.delimiter,
        "base_url": summary.base_url,
        "out_dir": summary.out_dir,
        "finished_at": summary.finished_at,
        "shard": summary.shard,
        "warnings": list(summary.warnings),
    }
    if summary.incremental is not None:
        facts = summary.incremental
        out["incremental"] = {
            "compared_with_snapshot": facts.compared_with_snapshot,
            "state": facts.state,
            "on_missing": facts.on_missing,
        }
        out["missing_since_last_run"] = facts.missing_since_last_run
        out["missing_ids"] = list(facts.missing_ids)
        out["deactivated"] = facts.deactivated
    if summary.shards is not None:
        out["shards"] = [
            {"shard": s.shard, "status": str(s.status), "message": s.message}
            for s in summary.shards
        ]
    return out


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    """summary.json's ``this_attempt``."""
    return {**_fields(attempt), "latency_ms": _fields(attempt.latency_ms)}


def attempt_from_json(value: Mapping[str, Any]) -> Attempt:
    latency = value.get("latency_ms") or {}
    return Attempt(
        requests=int(value.get("requests") or 0),
        retries=int(value.get("retries") or 0),
        rate_limited=int(value.get("rate_limited") or 0),
        max_in_flight=int(value.get("max_in_flight") or 0),
        duration_s=float(value.get("duration_s") or 0),
        records=int(value.get("records") or 0),
        rows_per_s=value.get("rows_per_s"),
        latency_ms=Latency(latency.get("p50"), latency.get("p95"), latency.get("p99")),
        started_at=value.get("started_at"),
        finished_at=value.get("finished_at"),
    )


def summary_from_json(value: Mapping[str, Any]) -> RunSummary:
    """A summary.json read back (``merge``); keys it lacks are zero or empty. One written
    before ``this_attempt`` existed had one attempt: its top-level figures."""
    latency = value.get("latency_ms") or {}
    source = value.get("input")
    attempt = value.get("this_attempt") or {
        **value,
        "records": value.get("records_this_run"),
        "started_at": None,
    }
    return RunSummary(
        status=RunStatus(value["status"]),
        message=value.get("message"),
        job=value.get("job"),
        dry_run=bool(value.get("dry_run")),
        rows=int(value.get("rows") or 0),
        counts={s: int(value.get(str(s)) or 0) for s in RecordStatus},
        pending=int(value.get("pending") or 0),
        rejected_by_stage=dict(value.get("rejected_by_stage") or {}),
        omitted={k: int(v) for k, v in (value.get("omitted") or {}).items()},
        requests=int(value.get("requests") or 0),
        retries=int(value.get("retries") or 0),
        rate_limited=int(value.get("rate_limited") or 0),
        max_in_flight=int(value.get("max_in_flight") or 0),
        duration_s=float(value.get("duration_s") or 0),
        rows_per_s=value.get("rows_per_s"),
        latency_ms=Latency(latency.get("p50"), latency.get("p95"), latency.get("p99")),
        input=None if not source else InputFacts(source["path"], source["size"], source["hash"]),
        encoding=value.get("encoding"),
        delimiter=value.get("delimiter"),
        base_url=value.get("base_url"),
        out_dir=value.get("out_dir"),
        finished_at=value.get("finished_at"),
        started_at=value.get("started_at"),
        attempts=int(value.get("attempts") or 1),
        this_attempt=attempt_from_json(attempt),
        shard=value.get("shard"),
        warnings=list(value.get("warnings") or []),
        run_id=value.get("run_id"),
        refeed_of=value.get("refeed_of"),
    )


def _fields(value: Latency | InputFacts | Attempt) -> dict[str, Any]:
    return dataclasses.asdict(value)
