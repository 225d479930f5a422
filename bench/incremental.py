"""Nightly incremental sync: a full run, then one with 1 % changed, 0.5 % added, 0.5 % gone.

    .venv/bin/python bench/incremental.py [--rows 100000]

Prints both runs' wall time, the requests the sandbox received for each, and the ratio of
the second run's time to the first's. The second run must send exactly the changed and
added records (checked here against the sandbox's own count).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from common import log, run_job, sandbox, work_dir
from data import customers, export_frame, write_job


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


def run_once(job: Path, out: Path, base_url: str) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    result = run_job(job, ["--base-url", base_url], out_dir=out, timeout_s=1800)
    return time.perf_counter() - started, result.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    rows = parser.parse_args().rows
    with work_dir() as work, sandbox() as api:
        first = customers(rows)
        export = work / "export.csv"
        export_frame(first).write_csv(export)
        job = write_job(work / "job.toml", export, work / "out")
        job.write_text('mode = "incremental"\n' + job.read_text(encoding="utf-8"), encoding="utf-8")
        log(f"first run: {rows:,} records")
        first_s, first_summary = run_once(job, work / "out1", api.base_url)
        first_requests = api.stats()["requests_total"]
        api.reset_stats()
        second, expected = second_export(first, rows)
        export_frame(second).write_csv(export)
        log(f"second run: {second.height:,} records, {expected:,} new or changed")
        second_s, second_summary = run_once(job, work / "out2", api.base_url)
        second_requests = api.stats()["requests_total"]
    created = first_summary["created"]
    print(f"first run:  {first_s:7.1f} s, {first_requests:,} requests ({created} created)")
    print(
        f"second run: {second_s:7.1f} s, {second_requests:,} requests "
        f"({second_summary['unchanged']} unchanged, {second_summary['updated']} updated, "
        f"{second_summary['created']} created, {second_summary['missing_since_last_run']} missing)"
    )
    verdict = "yes" if second_requests == expected else f"NO (expected {expected:,})"
    print(f"second / first time: {second_s / first_s:.2f}; requests as expected: {verdict}")


if __name__ == "__main__":
    main()
