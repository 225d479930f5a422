"""Combine the outputs of N shards into one set: results, rejects, missing and summary.

Refuses (ConfigError) when the shards do not fit together: different inputs or jobs, or a
record number reported by two shards.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Final

import polars as pl

from customer_import.errors import ConfigError
from customer_import.outputs import (
    MISSING_NAME,
    REJECTS_NAME,
    RESULTS_NAME,
    SUMMARY_NAME,
    atomic_text,
    write_summary,
)
from customer_import.summary import COUNTED_STATUSES, per_s

_SUMMED: Final = (
    *COUNTED_STATUSES,
    "rows",
    "pending",
    "records_this_run",
    "requests",
    "retries",
    "rate_limited",
    "max_in_flight",  # the shards' maxima added up: an upper bound of the run's
)
_STATUS_ORDER: Final = ("completed", "interrupted", "aborted")


def merge_outputs(shard_dirs: list[Path], out_dir: Path) -> dict[str, Any]:
    """Write the merged files into ``out_dir``; returns the merged summary."""
    summaries = [_read_summary(d) for d in shard_dirs]
    _check_same_input(summaries, shard_dirs)
    out_dir.mkdir(parents=True, exist_ok=True)
    _merge_csv(shard_dirs, RESULTS_NAME, "row", out_dir)
    _merge_csv(shard_dirs, REJECTS_NAME, "_row", out_dir)
    if any((d / MISSING_NAME).exists() for d in shard_dirs):
        _merge_csv(
            [d for d in shard_dirs if (d / MISSING_NAME).exists()], MISSING_NAME, None, out_dir
        )
    summary = merged_summary(summaries)
    write_summary(summary, out_dir)
    return summary


def _read_summary(folder: Path) -> dict[str, Any]:
    try:
        value = json.loads((folder / SUMMARY_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{folder} holds no {SUMMARY_NAME}: is it a run's output folder?"
        ) from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{folder / SUMMARY_NAME} is not a summary")
    return value


def _check_same_input(summaries: list[dict[str, Any]], folders: list[Path]) -> None:
    hashes = {(s.get("input") or {}).get("hash") for s in summaries}
    jobs = {s.get("job") for s in summaries}
    if len(hashes) > 1 or len(jobs) > 1:
        listed = ", ".join(str(f) for f in folders)
        raise ConfigError(f"the shards in {listed} come from different inputs or jobs")


def _merge_csv(folders: list[Path], name: str, row_column: str | None, out_dir: Path) -> None:
    frames = [pl.read_csv(f / name, infer_schema=False) for f in folders if (f / name).exists()]
    headers = {tuple(f.columns) for f in frames}
    if len(headers) > 1:
        raise ConfigError(f"the shards' {name} files have different columns")
    merged = pl.concat(frames) if frames else pl.DataFrame()
    if row_column is not None and merged.height:
        rows = merged[row_column].cast(pl.Int64)
        repeated = rows.filter(rows.is_duplicated()).unique().sort().head(5).to_list()
        if repeated:
            raise ConfigError(f"records {repeated} appear in more than one shard's {name}")
        merged = (
            merged.with_columns(rows)
            .sort(row_column)
            .with_columns(pl.col(row_column).cast(pl.String))
        )
    with atomic_text(out_dir / name) as handle:
        merged.write_csv(handle)


def merged_summary(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    first = summaries[0]
    merged: dict[str, Any] = {
        "status": max((s["status"] for s in summaries), key=_STATUS_ORDER.index),
        "job": first.get("job"),
        "dry_run": first.get("dry_run"),
        **{key: sum(int(s.get(key) or 0) for s in summaries) for key in _SUMMED},
    }
    stages: Counter[str] = Counter()
    for s in summaries:
        stages.update(s.get("rejected_by_stage") or {})
    duration = max(float(s.get("duration_s") or 0) for s in summaries)
    merged.update(
        rejected_by_stage=dict(stages),
        duration_s=duration,
        rows_per_s=_pace(summaries, merged["records_this_run"], duration),
        latency_ms=_worst_latency(summaries),
        input=first.get("input"),
        encoding=first.get("encoding"),
        delimiter=first.get("delimiter"),
        warnings=[w for s in summaries for w in s.get("warnings") or []],
        shards=[
            {"shard": s.get("shard"), "status": s["status"], "message": s.get("message")}
            for s in summaries
        ],
        message="; ".join(
            f"shard {s.get('shard')}: {s['message']}" for s in summaries if s.get("message")
        )
        or None,
    )
    return merged


def _worst_latency(summaries: list[dict[str, Any]]) -> dict[str, float | None]:
    """Percentiles cannot be merged exactly: the worst shard's, an upper bound."""
    worst: dict[str, float | None] = {}
    for q in ("p50", "p95", "p99"):
        values = [
            s["latency_ms"][q] for s in summaries if (s.get("latency_ms") or {}).get(q) is not None
        ]
        worst[q] = max(values) if values else None
    return worst


def _pace(summaries: list[dict[str, Any]], records: int, duration: float) -> float | None:
    """Unknown when a shard's summary predates ``records_this_run``."""
    if any("records_this_run" not in s for s in summaries):
        return None
    return per_s(records, duration)
