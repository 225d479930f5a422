"""summary.json: what a run did, in numbers. Counts come from the journal (the whole input,
earlier attempts included); what this attempt alone did comes from the run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from customer_import.contracts import (
    Ending,
    IncrementalFacts,
    InputFacts,
    Latency,
    RecordStatus,
    RunStatus,
    RunSummary,
    SendFacts,
)
from customer_import.record.journal import Journal


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


def build_summary(run: RunIdentity, facts: RunFacts, journal: Journal) -> RunSummary:
    by_status = journal.count_by_status()
    sent = facts.sent
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
        requests=sent.requests,
        retries=sent.retries,
        rate_limited=sent.rate_limited,
        max_in_flight=sent.max_in_flight,
        duration_s=round(facts.duration_s, 3),
        records_this_run=facts.records_this_run,
        rows_per_s=per_s(facts.records_this_run, facts.duration_s),
        latency_ms=sent.latency,
        input=run.input,
        encoding=run.encoding,
        delimiter=run.delimiter,
        base_url=run.base_url,
        out_dir=run.out_dir,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        shard=run.shard,
        warnings=facts.warnings,
        incremental=facts.incremental,
    )


def per_s(records: int, duration_s: float) -> float | None:
    """Records a second, given ``records_this_run``: an interrupted run or a resume does not
    count what it did not do."""
    return round(records / duration_s, 1) if duration_s > 0 else None


def summary_json(summary: RunSummary) -> dict[str, Any]:
    """summary.json's object: its keys, in its order."""
    out: dict[str, Any] = {
        "status": str(summary.status),
        "message": summary.message,
        "job": summary.job,
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
        "records_this_run": summary.records_this_run,
        "rows_per_s": summary.rows_per_s,
        "latency_ms": _fields(summary.latency_ms),
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


def summary_from_json(value: Mapping[str, Any]) -> RunSummary:
    """A summary.json read back (``merge``); keys it lacks are zero or empty."""
    latency = value.get("latency_ms") or {}
    source = value.get("input")
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
        records_this_run=int(value.get("records_this_run") or 0),
        rows_per_s=value.get("rows_per_s"),
        latency_ms=Latency(latency.get("p50"), latency.get("p95"), latency.get("p99")),
        input=None if not source else InputFacts(source["path"], source["size"], source["hash"]),
        encoding=value.get("encoding"),
        delimiter=value.get("delimiter"),
        base_url=value.get("base_url"),
        out_dir=value.get("out_dir"),
        finished_at=value.get("finished_at"),
        shard=value.get("shard"),
        warnings=list(value.get("warnings") or []),
    )


def _fields(value: Latency | InputFacts) -> dict[str, Any]:
    return dataclasses.asdict(value)
