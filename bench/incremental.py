"""Nightly incremental sync: a first run, then one with 1 % changed, 0.5 % added, 0.5 % gone.

    .venv/bin/python bench/incremental.py [--rows 100000]          # the first run sends all
    .venv/bin/python bench/incremental.py --rows 1000000 --seeded  # goal 4: the first run seeded

Prints both runs' wall time and peak RSS, the requests the sandbox received for each, and
the ratio of the second run's time to the first's. The second run must send exactly the
changed and added records (checked here against the sandbox's own count).

``--seeded``: rather than sending every record once (minutes at a million), the bench leaves
the state the first run would leave, through the project's own code: the job's mapping and
Validator build every valid record's body, ``PartWriter`` records them as sent and
``merge`` writes the snapshot. The sandbox then holds none of them, so the second run's
changed records are created there rather than updated; the requests are the same.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from common import MERCHANT_ID, JobRun, Row, at_most, log, run_job, sandbox, work_dir
from data import customers, export_frame, write_job

WALL_GOAL_S: Final = 30.0
RSS_LIMIT_MB: Final = 400.0


@dataclass(frozen=True, slots=True)
class Plan:
    rows: int = 1_000_000
    seeded: bool = True
    timeout_s: float = 1800.0


@dataclass(frozen=True, slots=True)
class Nightly:
    """The two runs, the requests the sandbox counted for each and what the second should
    have sent."""

    first: JobRun | None  # None when seeded
    first_s: float
    first_requests: int
    second: JobRun
    second_requests: int
    expected: int

    @property
    def exact(self) -> bool:
        return self.second_requests == self.expected


def second_export(first: pl.DataFrame, rows: int) -> tuple[pl.DataFrame, int]:
    """1 % of records changed, 0.5 % removed, 0.5 % added; returns the frame and how many
    valid records are new or changed (invalid ones are rejected, never sent)."""
    index = pl.int_range(pl.len())
    changed = (index % 100) == 0
    removed = (index % 200) == 1
    edited = first.with_columns(
        pl.when(changed).then(pl.col("last") + "-x").otherwise(pl.col("last")).alias("last")
    ).filter(~removed)
    added = customers(rows // 200, start=rows + 1)
    sent = first.select((changed & pl.col("_valid")).sum()).item() + added["_valid"].sum()
    return pl.concat([edited, added]), int(sent)


def seed_state(job_file: Path, base_url: str) -> int:
    """The state a first run against ``base_url`` would leave after sending every valid
    record of the job's export, written by the project's own snapshot code; returns its size."""
    from customer_import.config import load_job
    from customer_import.contracts import BODY, EXTERNAL_ID, ROW
    from customer_import.record.snapshot import (
        PartWriter,
        StateLocation,
        mapping_fingerprint,
        merge,
        state_key,
    )
    from customer_import.source import open_source
    from customer_import.transform.mapping import map_batch, plan_mapping
    from customer_import.transform.validation import Validator

    job = load_job(job_file)
    assert job.source.path is not None and job.output.state_dir is not None
    location = StateLocation(job.output.state_dir, state_key(job.name, base_url, MERCHANT_ID))
    parts, sent = PartWriter(location.work), []
    with open_source(job.source, job.source.path) as source:
        plan = plan_mapping(job.mapping, source.header, source.columns, job.source.null_values)
        validator = Validator(plan)
        for batch in source.batches():
            valid = validator.validate(map_batch(batch.frame, plan)).valid
            parts.seen(valid[EXTERNAL_ID])
            parts.sent(valid[ROW], valid[EXTERNAL_ID], valid[BODY])
            sent.append(valid[ROW])
    rows = pl.concat(sent) if sent else pl.Series(ROW, [], dtype=pl.Int64)
    return merge(location, mapping_fingerprint(job), rows, export_complete=True)


def run_once(job: Path, out: Path, base_url: str, timeout_s: float) -> JobRun:
    return run_job(job, ["--base-url", base_url], out_dir=out, timeout_s=timeout_s)


def nightly(plan: Plan, work: Path) -> Nightly:
    with sandbox() as api:
        first = customers(plan.rows)
        export = work / "export.csv"
        export_frame(first).write_csv(export)
        job = write_job(work / "job.toml", export, work / "out")
        job.write_text('mode = "incremental"\n' + job.read_text(encoding="utf-8"), encoding="utf-8")
        started = time.perf_counter()
        first_run = None
        if plan.seeded:
            log(f"first run seeded: {seed_state(job, api.base_url):,} customers in the snapshot")
        else:
            log(f"first run: {plan.rows:,} records")
            first_run = run_once(job, work / "out1", api.base_url, plan.timeout_s)
        first_s = time.perf_counter() - started
        first_requests = int(api.stats()["requests_total"])
        api.reset_stats()
        second, expected = second_export(first, plan.rows)
        del first
        export_frame(second).write_csv(export)
        log(f"second run: {second.height:,} records, {expected:,} new or changed")
        del second
        second_run = run_once(job, work / "out2", api.base_url, plan.timeout_s)
        requests = int(api.stats()["requests_total"])
    return Nightly(first_run, first_s, first_requests, second_run, requests, expected)


def report(night: Nightly) -> list[str]:
    second, summary = night.second.child, night.second.summary
    if night.first is None:
        first = (
            f"first run:  {night.first_s:7.1f} s seeded (bench), {night.first_requests:,} requests"
        )
    else:
        first = (
            f"first run:  {night.first.child.wall_s:7.1f} s wall, peak RSS "
            f"{night.first.child.max_rss_mb:.0f} MB, {night.first_requests:,} requests "
            f"({night.first.summary['created']} created)"
        )
    verdict = "yes" if night.exact else f"NO (expected {night.expected:,})"
    lines = [
        first,
        f"second run: {second.wall_s:7.1f} s wall (start-up included), {second.cpu_s:.1f} s CPU, "
        f"peak RSS {second.max_rss_mb:.0f} MB, {night.second_requests:,} requests "
        f"({summary['unchanged']} unchanged, {summary['updated']} updated, "
        f"{summary['created']} created, {summary['missing_since_last_run']} missing)",
        f"requests as expected: {verdict}",
    ]
    if night.first is not None:
        lines.append(f"second / first time: {second.wall_s / night.first.child.wall_s:.2f}")
    return lines


def rows(night: Nightly, plan: Plan) -> list[Row]:
    """Goal 4 of issue 20: the second run's wall time and memory, exactly the changed sent."""
    second = night.second.child
    records = f"{plan.rows:,} records, 1 % changed"
    details = {"requests": night.second_requests, "expected": night.expected}
    details |= {"summary_duration_s": night.second.summary["duration_s"], "cpu_s": second.cpu_s}
    return [
        Row(
            f"9 nightly diff: wall, {records}",
            f"{second.wall_s:.1f} s (exactly the changed sent: {'yes' if night.exact else 'NO'})",
            f"goal {WALL_GOAL_S:.0f} s",
            second.wall_s / WALL_GOAL_S,
            "<= 1.0",
            at_most(second.wall_s / WALL_GOAL_S, 1.0) if night.exact else False,
            details,
        ),
        Row(
            f"9 nightly diff: peak RSS, {records}",
            f"{second.max_rss_mb:.0f} MB",
            f"limit {RSS_LIMIT_MB:.0f} MB",
            second.max_rss_mb / RSS_LIMIT_MB,
            "<= 1.0",
            at_most(second.max_rss_mb / RSS_LIMIT_MB, 1.0),
        ),
    ]


def run(plan: Plan, work: Path) -> list[Row]:
    """For run_all.py (``--only nightly``), in a folder of its own."""
    folder = work / "nightly"
    folder.mkdir(exist_ok=True)
    night = nightly(plan, folder)
    for line in report(night):
        log(line)
    return rows(night, plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seeded", action="store_true", help="seed the first run's state")
    args = parser.parse_args()
    with work_dir() as work:
        night = nightly(Plan(rows=args.rows, seeded=args.seeded), work)
    print("\n".join(report(night)))


if __name__ == "__main__":
    main()
