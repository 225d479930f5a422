"""Memory and dry-run speed: ``customer-import run --dry-run`` over generated exports (5, 6).

Peak RSS is the kernel's high-water mark of the job process (ru_maxrss from wait4, read by
spawn.py so that this process's own memory is not counted in; see there). Each run is capped
in time: a run still going at the cap is stopped with SIGTERM (the job then writes its outputs
and exits), and its row says so: the peak is then a lower bound and no target is judged on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common import JobRun, Row, at_least, at_most, log, rate, run_job
from data import write_csv, write_job

RSS_LIMIT_MB: Final = 400.0
DRY_RUN_GOAL: Final = 50_000.0
_DONE_KEYS: Final = ("valid", "rejected", "duplicate", "created", "updated", "unchanged")


@dataclass(frozen=True, slots=True)
class Plan:
    sizes: tuple[int, ...] = (1_000_000, 5_000_000)
    cap_s: float = 210.0


@dataclass(frozen=True, slots=True)
class DryRun:
    records: int
    job: JobRun
    generate_s: float
    csv_mb: float
    cap_s: float

    @property
    def done(self) -> int:
        return sum(int(self.job.summary.get(k) or 0) for k in _DONE_KEYS)

    @property
    def complete(self) -> bool:
        return self.job.summary["status"] == "completed" and self.done == self.records

    @property
    def per_s(self) -> float:
        """Records with an outcome per second of the run (the pre-pass and outputs included)."""
        return self.done / float(self.job.summary["duration_s"])

    @property
    def peak_mb(self) -> float:
        return self.job.child.max_rss_mb


def dry_run(records: int, plan: Plan, work: Path) -> DryRun:
    started = time.perf_counter()
    csv = write_csv(work / f"dry-{records}.csv", records)
    generated = time.perf_counter() - started
    size_mb = csv.stat().st_size / 1e6
    log(f"dry run over {records:,} records ({size_mb:.0f} MB CSV, generated in {generated:.1f} s)")
    job_file = write_job(work / f"dry-{records}.toml", csv, work / "out")
    try:
        job = run_job(
            job_file, ["--dry-run"], out_dir=work / f"out-{records}", timeout_s=plan.cap_s
        )
    finally:
        csv.unlink()
    run = DryRun(records, job, generated, size_mb, plan.cap_s)
    log(
        f"  {run.done:,}/{records:,} records in {job.summary['duration_s']} s "
        f"({rate(run.per_s)}), peak RSS {run.peak_mb:.0f} MB, {job.summary['status']}"
    )
    return run


def _state(run: DryRun) -> str:
    if run.complete:
        return f"completed in {run.job.summary['duration_s']:.0f} s"
    if run.job.summary["status"] == "completed":  # every record must have an outcome
        return f"COMPLETED WITHOUT AN OUTCOME FOR {run.records - run.done:,} RECORDS"
    return f"STOPPED by the {run.cap_s:.0f} s cap after {run.done:,} records"


def peak_row(run: DryRun) -> Row:
    bound = "" if run.complete else ">= "
    ratio = run.peak_mb / RSS_LIMIT_MB
    return Row(
        f"5 memory: peak RSS, dry run of {run.records:,} records",
        f"{bound}{run.peak_mb:.0f} MB ({_state(run)})",
        f"limit {RSS_LIMIT_MB:.0f} MB",
        ratio,
        "<= 1.0",
        at_most(ratio, 1.0) if run.complete or ratio > 1 else None,
        {"summary_status": run.job.summary["status"], "csv_mb": round(run.csv_mb)},
    )


def flatness_row(small: DryRun, big: DryRun) -> Row:
    both = small.complete and big.complete
    ratio = big.peak_mb / small.peak_mb
    return Row(
        f"5 memory: {big.records:,} vs {small.records:,} records",
        f"{big.peak_mb:.0f} MB" + ("" if big.complete else " (incomplete run)"),
        f"{small.peak_mb:.0f} MB" + ("" if small.complete else " (incomplete run)"),
        ratio,
        "<= 1.10",
        at_most(ratio, 1.10) if both else None,
    )


def speed_row(run: DryRun) -> Row:
    """Issue 7's goal is set on the 1,000,000-record file; other sizes are reported."""
    ratio = run.per_s / DRY_RUN_GOAL
    wall = run.done / run.job.child.wall_s
    judged = run.records == 1_000_000
    return Row(
        f"6 dry run: records validated/s, {run.records:,} records",
        f"{rate(run.per_s)} ({rate(wall)} wall incl. start-up; {_state(run)})",
        f"goal {rate(DRY_RUN_GOAL)}",
        ratio,
        ">= 1.0" if judged else "report",
        at_least(ratio, 1.0) if judged else None,
        {
            "summary_rows_per_s": run.job.summary.get("rows_per_s"),
            "cpu_s": round(run.job.child.cpu_s, 1),
            "wall_s": round(run.job.child.wall_s, 1),
        },
    )


def run(plan: Plan, work: Path) -> list[Row]:
    runs = [dry_run(records, plan, work) for records in plan.sizes]
    rows = [peak_row(r) for r in runs]
    if len(runs) >= 2:
        rows.append(flatness_row(runs[0], runs[-1]))
    return rows + [speed_row(r) for r in runs]
