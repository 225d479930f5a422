"""What the command shows a person: the progress bar (or progress lines under cron), the
report of a run, and ``check``'s profile of the fields; with ``--log-format json``, the report
as log events a collector reads (``run_stopped``, ``run_finished``)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, TextIO

from tqdm import tqdm

from customer_import.contracts import ExitCode, Progress, RecordStatus, RunReport, RunStatus
from customer_import.logs import event, mask, mask_value
from customer_import.outputs.files import (
    MISSING_NAME,
    REJECTS,
    REJECTS_NAME,
    RESULTS,
    RESULTS_NAME,
    SUMMARY_NAME,
    table_path,
)
from customer_import.outputs.report import REPORT_NAME
from customer_import.outputs.summary import attempt_json
from customer_import.transform.fieldstats import FieldStats

log = logging.getLogger("customer_import")


class ProgressRenderer:
    """A tqdm bar on a terminal; otherwise (cron, ``--no-progress``, JSON logs) a progress log
    line every ``LOG_EVERY_S``."""

    LOG_EVERY_S: Final = 10.0

    def __init__(self, *, bar: bool = True, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._use_bar = bar and self._stream.isatty()
        self._bar: tqdm[None] | None = None
        self._last_log = time.monotonic()

    def __enter__(self) -> Callable[[Progress], None]:
        return self._update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def _update(self, progress: Progress) -> None:
        if self._use_bar:
            self._draw(progress)
        elif time.monotonic() - self._last_log >= self.LOG_EVERY_S:
            self._last_log = time.monotonic()
            log.info(
                "progress: %d/%d records; %s",
                progress.done,
                progress.total,
                _counts(progress.counts),
                extra=event(
                    "progress",
                    done=progress.done,
                    total=progress.total,
                    requests=progress.requests,
                    **{str(k): v for k, v in progress.counts.items()},
                ),
            )

    def _draw(self, progress: Progress) -> None:
        if self._bar is None:
            self._bar = tqdm(  # redrawn at every report (twice a second), not on tqdm's clock
                total=progress.total or None,
                unit="rec",
                file=self._stream,
                dynamic_ncols=True,
                mininterval=0,
                miniters=1,
            )
        self._bar.total = progress.total or None
        # The counts first: ``update`` redraws the line with the postfix set before it, so
        # counts set after it would show a report late, behind the bar's own position.
        self._bar.set_postfix_str(_counts(progress.counts), refresh=False)
        self._bar.update(progress.done - self._bar.n)


def print_report(report: RunReport) -> None:
    s = report.summary
    attempt = s.this_attempt
    counted = ", ".join(
        f"{status} {s.count(status)}"
        for status in RecordStatus
        if s.count(status) or status is RecordStatus.REJECTED
    )
    lines = [
        f"{report.status}: {s.rows} records; this run {attempt.duration_s} s at "
        f"{attempt.rows_per_s} records/s",
        f"  {counted}",
    ]
    if s.incremental is not None and s.incremental.missing_since_last_run:
        inc = s.incremental
        lines.append(
            f"  missing since the last run {inc.missing_since_last_run}, deactivated "
            f"{inc.deactivated} (on_missing = {inc.on_missing}): {report.out_dir / MISSING_NAME}"
        )
    if s.pending and report.resumable:
        lines.append(f"  pending {s.pending} (not sent yet: run again with --resume)")
    elif s.pending:
        lines.append(f"  not sent {s.pending} (nothing was: the next run starts afresh)")
    if s.rejected_by_stage:
        lines.append(f"  rejected by stage: {_counts(s.rejected_by_stage)}")
    if report.message:
        lines.append(f"  {report.message}")
    for name, path in _files(report).items():
        if name != MISSING_NAME:  # named above, with the missing customers
            lines.append(f"  {name}: {path}")
    print("\n".join(lines))


def _files(report: RunReport) -> dict[str, str]:
    """The files a person reads after a run, by name: missing.csv when it was written."""
    out = report.out_dir
    paths = [_table(out, RESULTS, RESULTS_NAME), _table(out, REJECTS, REJECTS_NAME)]
    paths += [out / SUMMARY_NAME, out / REPORT_NAME]
    inc = report.summary.incremental
    if inc is not None and inc.missing_since_last_run:
        paths.append(out / MISSING_NAME)
    return {path.name: str(path) for path in paths}


def _table(folder: Path, stem: str, default: str) -> Path:
    """Results or rejects in the format they were written in (.xlsx or .csv)."""
    return table_path(folder, stem) or folder / default


def log_report(report: RunReport) -> None:
    """The report as log events (``--log-format json``): why the run stopped, if it did
    (``run_stopped``), then its counts (``run_finished``)."""
    s = report.summary
    code = report.exit_code
    if report.status is not RunStatus.COMPLETED:
        log.error(
            "%s",
            report.message or f"the run stopped ({report.status})",
            extra=event(
                "run_stopped",
                status=str(report.status),
                exit_code=int(code),
                resumable=report.resumable,
            ),
        )
    fields: dict[str, object] = {
        "status": str(report.status),
        "exit_code": int(code),
        "job": s.job,
        "dry_run": s.dry_run,
        "rows": s.rows,
        **{str(status): s.count(status) for status in RecordStatus},
        "pending": s.pending,
        "rejected_by_stage": dict(s.rejected_by_stage),
        "requests": s.requests,
        "retries": s.retries,
        "rate_limited": s.rate_limited,
        "duration_s": s.duration_s,
        "rows_per_s": s.rows_per_s,
        "attempts": s.attempts,
        "this_attempt": attempt_json(s.this_attempt),
        "out_dir": str(report.out_dir),
        "files": _files(report),
    }
    if s.incremental is not None:
        fields["missing_since_last_run"] = s.incremental.missing_since_last_run
        fields["deactivated"] = s.incremental.deactivated
    level = {ExitCode.OK: logging.INFO, ExitCode.REJECTS: logging.WARNING}.get(code, logging.ERROR)
    counted = ", ".join(f"{k} {s.count(k)}" for k in RecordStatus if s.count(k))
    log.log(
        level,
        "%s: %d records; %s",
        report.status,
        s.rows,
        counted or "none done",
        extra=event("run_finished", **fields),
    )


def render_check(report: RunReport, stats: FieldStats) -> str:
    """``check``'s profile: the run's counts, then per field its counts and most common
    reasons with a few examples, emails and phones masked wherever they appear."""
    s = report.summary
    shown = (RecordStatus.VALID, RecordStatus.DUPLICATE, RecordStatus.REJECTED)
    lines = [f"{s.rows} records: " + ", ".join(f"{s.count(k)} {k}" for k in shown)]
    if s.rejected_by_stage:
        lines.append(f"rejected by stage: {_counts(s.rejected_by_stage)}")
    for target, field in stats.fields.items():
        counted = f"{field.valid} valid, {field.empty} empty, {field.rejected} rejected"
        omitted = f", {field.omitted} omitted" if field.omitted else ""
        lines.append(f"{target}: {counted}{omitted}")
        for kind, count, examples in field.top_reasons():
            shown_examples = ", ".join(_example(target, e) for e in examples)
            lines.append(f"    {count} x {mask(kind)}   e.g. {shown_examples}")
    lines.append(f"rejects: {_table(report.out_dir, REJECTS, REJECTS_NAME)}")
    return "\n".join(lines)


def _example(target: str, value: str) -> str:
    """A value as ``check`` shows it: an email or phone field's never whole, and any email
    address or phone number inside another field's masked too."""
    if not value:
        return "(empty)"
    return repr(mask(mask_value(target, value)))


def _counts(counts: Mapping[str, int] | Mapping[RecordStatus, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "starting"
