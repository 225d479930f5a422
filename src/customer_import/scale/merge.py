"""Combine the outputs of N shards into one set: results, rejects, missing and summary.

Refuses (ConfigError) when the shards do not fit together: different inputs or jobs, or a
record number reported by two shards.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Final

import polars as pl

from customer_import.config import DEFAULT_KEEP_RUNS
from customer_import.contracts import (
    Attempt,
    Latency,
    RecordStatus,
    RunReport,
    RunStatus,
    RunSummary,
    ShardStatus,
)
from customer_import.errors import ConfigError
from customer_import.outputs.attempts import per_s
from customer_import.outputs.files import (
    MISSING_NAME,
    REJECTS,
    RESULTS,
    SUMMARY_NAME,
    Layout,
    open_table,
    table_path,
    write_summary,
)
from customer_import.outputs.reading import read_table, written_delimiter
from customer_import.outputs.report import REPORT_NAME, write_report
from customer_import.outputs.summary import summary_from_json
from customer_import.record.history import History

log = logging.getLogger("customer_import")
MISSING: Final = MISSING_NAME.removesuffix(".csv")
_STATUS_ORDER: Final = (
    RunStatus.COMPLETED,
    RunStatus.INTERRUPTED,
    RunStatus.ABORTED,
    RunStatus.ABANDONED,
)


def merge_run(
    shard_dirs: list[Path], history: History, run_id: str, keep_runs: int = DEFAULT_KEEP_RUNS
) -> RunSummary:
    """The merged files written into the run's folder in ``history``, then copied to the top
    of its output folder (which the caller has locked); the oldest runs pruned."""
    folder = history.folder(run_id)
    try:
        summary = merge_outputs(shard_dirs, folder, shown=history.out_dir, run_id=run_id)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # the run never was
        raise
    history.publish(run_id)
    history.prune(keep_runs, spare={run_id})
    return summary


def merge_outputs(
    shard_dirs: list[Path], out_dir: Path, *, shown: Path | None = None, run_id: str | None = None
) -> RunSummary:
    """Write the merged files into ``out_dir``; returns the merged summary (its ``out_dir``
    is ``shown``, where the user finds the files, when given)."""
    summaries = [_read_summary(d) for d in shard_dirs]
    _check_same_input(summaries, shard_dirs)
    out_dir.mkdir(parents=True, exist_ok=True)
    _merge_table(shard_dirs, RESULTS, "row", out_dir)
    _merge_table(shard_dirs, REJECTS, "_row", out_dir)
    _merge_table(shard_dirs, MISSING, None, out_dir)
    summary = dataclasses.replace(
        merged_summary(summaries), out_dir=str(shown or out_dir), run_id=run_id
    )
    write_summary(summary, out_dir)
    # A merged run's page: the counts and reasons; the shards' own pages have the rest.
    pages = [d / REPORT_NAME for d in shard_dirs if (d / REPORT_NAME).exists()]
    report = RunReport(summary.status, summary, Path(summary.out_dir or out_dir), summary.message)
    write_report(out_dir, report, shard_reports=pages)
    return summary


def _read_summary(folder: Path) -> RunSummary:
    try:
        value = json.loads((folder / SUMMARY_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{folder} holds no {SUMMARY_NAME}: is it a run's output folder?"
        ) from exc
    try:
        return summary_from_json(value)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{folder / SUMMARY_NAME} is not a summary") from exc


def _check_same_input(summaries: list[RunSummary], folders: list[Path]) -> None:
    hashes = {s.input.hash if s.input else None for s in summaries}
    jobs = {s.job for s in summaries}
    if len(hashes) > 1 or len(jobs) > 1:
        listed = ", ".join(str(f) for f in folders)
        raise ConfigError(f"the shards in {listed} come from different inputs or jobs")


def _merge_table(folders: list[Path], stem: str, row_column: str | None, out_dir: Path) -> None:
    """The shards' tables of one kind as one, ordered by ``row_column``, in the shards' own
    format (CSV, with their BOM and delimiter, or a workbook: one shard's too big for a sheet
    was written as CSV, and so is a merged one); none when no shard has one."""
    paths = [p for f in folders if (p := table_path(f, stem)) is not None]
    if not paths:
        return
    tables = [read_table(p) for p in paths]
    headers = {tuple(header) for header, _ in tables}
    if len(headers) > 1:
        raise ConfigError(f"the shards' {stem} files have different columns")
    header = list(headers.pop())
    merged = pl.concat([frame for _, frame in tables])
    if row_column is not None and merged.height:
        merged = _by_row(merged, str(header.index(row_column)), stem)
    xlsx = [p for p in paths if p.suffix == ".xlsx"]
    layout, too_many = _written_layout((xlsx or paths)[0]).fitting(stem, merged.height)
    if too_many:
        log.warning("%s", too_many)
    with open_table(out_dir, stem, layout) as table:
        table.writerow(header)
        table.writerows(merged.iter_rows())


def _by_row(merged: pl.DataFrame, column: str, name: str) -> pl.DataFrame:
    rows = merged[column].cast(pl.Int64)
    repeated = rows.filter(rows.is_duplicated()).unique().sort().head(5).to_list()
    if repeated:
        raise ConfigError(f"records {repeated} appear in more than one shard's {name}")
    return merged.with_columns(rows.alias("__order__")).sort("__order__").drop("__order__")


def _written_layout(path: Path) -> Layout:
    """How a shard wrote ``path`` (its format; a CSV's BOM and delimiter)."""
    if path.suffix == ".xlsx":
        return Layout("xlsx")
    with path.open("rb") as handle:
        bom = handle.read(3) == codecs.BOM_UTF8
    return Layout("csv", bom, written_delimiter(path))


def merged_summary(summaries: list[RunSummary]) -> RunSummary:
    first = summaries[0]
    stages: Counter[str] = Counter()
    omitted: Counter[str] = Counter()
    for s in summaries:
        stages.update(s.rejected_by_stage)
        omitted.update(s.omitted)
    duration = max(s.duration_s for s in summaries)
    records = sum(s.this_attempt.records for s in summaries)  # of the attempts, all shards'
    return RunSummary(
        status=max((s.status for s in summaries), key=_STATUS_ORDER.index),
        message="; ".join(f"shard {s.shard}: {s.message}" for s in summaries if s.message) or None,
        job=first.job,
        dry_run=first.dry_run,
        rows=sum(s.rows for s in summaries),
        counts={status: sum(s.count(status) for s in summaries) for status in RecordStatus},
        pending=sum(s.pending for s in summaries),
        rejected_by_stage=dict(stages),
        omitted=dict(sorted(omitted.items())),
        requests=sum(s.requests for s in summaries),
        retries=sum(s.retries for s in summaries),
        rate_limited=sum(s.rate_limited for s in summaries),
        # the shards' maxima added up: an upper bound of the run's
        max_in_flight=sum(s.max_in_flight for s in summaries),
        duration_s=duration,
        rows_per_s=per_s(sum(s.rows - s.pending for s in summaries), duration),
        latency_ms=_worst_latency([s.latency_ms for s in summaries]),
        attempts=max(s.attempts for s in summaries),
        started_at=min((s.started_at or "" for s in summaries), default="") or None,
        this_attempt=_merged_attempt([s.this_attempt for s in summaries], records),
        input=first.input,
        refeed_of=first.refeed_of,
        encoding=first.encoding,
        delimiter=first.delimiter,
        base_url=first.base_url,
        finished_at=max((s.finished_at or "" for s in summaries), default="") or None,
        warnings=[w for s in summaries for w in s.warnings],
        shards=[ShardStatus(s.shard, s.status, s.message) for s in summaries],
    )


def _merged_attempt(attempts: list[Attempt], records: int) -> Attempt:
    """The shards' attempts as one: counts added up, the longest duration, the most in flight
    added up (an upper bound), the worst latency."""
    duration = max(a.duration_s for a in attempts)
    return Attempt(
        requests=sum(a.requests for a in attempts),
        retries=sum(a.retries for a in attempts),
        rate_limited=sum(a.rate_limited for a in attempts),
        max_in_flight=sum(a.max_in_flight for a in attempts),
        duration_s=duration,
        records=records,
        rows_per_s=per_s(records, duration),
        latency_ms=_worst_latency([a.latency_ms for a in attempts]),
        started_at=min((a.started_at or "" for a in attempts), default="") or None,
        finished_at=max((a.finished_at or "" for a in attempts), default="") or None,
    )


def _worst_latency(latencies: list[Latency]) -> Latency:
    """Percentiles cannot be merged exactly: the worst shard's, an upper bound."""

    def worst(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    return Latency(
        worst([latency.p50 for latency in latencies]),
        worst([latency.p95 for latency in latencies]),
        worst([latency.p99 for latency in latencies]),
    )
