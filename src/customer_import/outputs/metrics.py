"""``[output] metrics_file``: the last run in Prometheus' text format, for node_exporter's
textfile collector (a ``.prom`` file in its folder) and the monitor that watches the cron job.

Written with ``prometheus_client.write_to_textfile``: to a temporary file beside it, then
renamed, so the collector never reads half a file. Every metric is labelled with the job's
name. The record counts are the whole input's (as in summary.json); requests, retries, 429s,
the duration and the start and end times are this attempt's: the run the cron started.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from customer_import.contracts import RecordStatus, RunReport, RunStatus

log = logging.getLogger("customer_import")

PREFIX = "customer_import_last_run_"


def write_metrics(path: Path, report: RunReport) -> None:
    """The report's metrics into ``path``; a file that cannot be written is logged, not
    raised: the import is done either way, and the monitor sees the file grow old."""
    try:
        write_to_textfile(str(path), _registry(report))
    except OSError as exc:
        log.error("the metrics file %s could not be written: %s", path, exc)


def _registry(report: RunReport) -> CollectorRegistry:
    s, attempt = report.summary, report.summary.this_attempt
    registry = CollectorRegistry()
    job = s.job or ""

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(PREFIX + name, doc, ["job"], registry=registry).labels(job).set(value)

    def family(name: str, doc: str, label: str, values: dict[str, float]) -> None:
        metric = Gauge(PREFIX + name, doc, ["job", label], registry=registry)
        for key, value in values.items():
            metric.labels(job, key).set(value)

    statuses = {str(status): float(status is report.status) for status in RunStatus}
    family("status", "1 for how the last run ended, 0 for the others", "status", statuses)
    gauge("exit_code", "the last run's exit code (0 ok, 1 rejects, 3 stopped...)", report.exit_code)
    gauge("start_timestamp_seconds", "when the last run started", _epoch(attempt.started_at))
    gauge("end_timestamp_seconds", "when the last run ended", _epoch(attempt.finished_at))
    gauge("duration_seconds", "how long the last run took", attempt.duration_s)
    gauge("rows", "input records", s.rows)
    records = {str(status): float(s.count(status)) for status in RecordStatus}
    records["pending"] = float(s.pending)
    family("records", "input records by outcome (the whole input)", "status", records)
    gauge("requests", "requests the last run made (retries included)", attempt.requests)
    gauge("retries", "requests the last run retried", attempt.retries)
    gauge("rate_limited", "429 answers the last run had", attempt.rate_limited)
    return registry


def _epoch(moment: str | None) -> float:
    return datetime.fromisoformat(moment).timestamp() if moment else 0.0
