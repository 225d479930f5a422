"""What the command shows a person: the progress bar (or progress lines under cron), the
report of a run, and ``check``'s profile of the fields."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Final

from tqdm import tqdm

from customer_import.contracts import Progress, RecordStatus, RunReport
from customer_import.logs import mask, mask_value
from customer_import.outputs.files import MISSING_NAME, REJECTS_NAME, RESULTS_NAME, SUMMARY_NAME
from customer_import.transform.fieldstats import FieldStats

log = logging.getLogger("customer_import")


class ProgressRenderer:
    """A tqdm bar on a terminal; otherwise (cron) a log line every few seconds."""

    _LOG_EVERY_S: Final = 10.0

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: tqdm[None] | None = None
        self._last_log = time.monotonic()

    def __enter__(self) -> Callable[[Progress], None] | None:
        return self._update if self._enabled else None

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def _update(self, progress: Progress) -> None:
        if sys.stderr.isatty():
            self._draw(progress)
        elif time.monotonic() - self._last_log >= self._LOG_EVERY_S:
            self._last_log = time.monotonic()
            log.info(
                "progress: %d/%d records; %s",
                progress.done,
                progress.total,
                _counts(progress.counts),
            )

    def _draw(self, progress: Progress) -> None:
        if self._bar is None:
            self._bar = tqdm(
                total=progress.total or None, unit="rec", file=sys.stderr, dynamic_ncols=True
            )
        self._bar.total = progress.total or None
        self._bar.update(progress.done - self._bar.n)
        self._bar.set_postfix_str(_counts(progress.counts), refresh=False)


def print_report(report: RunReport) -> None:
    s = report.summary
    counted = ", ".join(
        f"{status} {s.count(status)}"
        for status in RecordStatus
        if s.count(status) or status is RecordStatus.REJECTED
    )
    lines = [
        f"{report.status}: {s.rows} records; this run {s.duration_s} s at {s.rows_per_s} records/s",
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
    for name in (RESULTS_NAME, REJECTS_NAME, SUMMARY_NAME):
        lines.append(f"  {name}: {report.out_dir / name}")
    print("\n".join(lines))


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
    lines.append(f"rejects: {report.out_dir / REJECTS_NAME}")
    return "\n".join(lines)


def _example(target: str, value: str) -> str:
    """A value as ``check`` shows it: an email or phone field's never whole, and any email
    address or phone number inside another field's masked too."""
    if not value:
        return "(empty)"
    return repr(mask(mask_value(target, value)))


def _counts(counts: Mapping[str, int] | Mapping[RecordStatus, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "starting"
