"""The journal's write cost: a row, and a commit of a group of outcomes.

    .venv/bin/python bench/journal_writes.py            # 200,000 rows of each kind, best of 3
    .venv/bin/python bench/journal_writes.py --groups   # the group commits of a send run
    .venv/bin/python bench/run_all.py --only journal    # the group commits, in the table

Rows: writes through the real ``Journal`` in flushes of 10,000 rows (the dry run's batch), into
a fresh file each repeat; the baseline is the same journal with its ``_insert`` replaced by one
``executemany`` (one statement a row). A dry run's valid records go in as one blob a batch
(``record/bulk.py``): their baseline is the same records as rows, by ``executemany``, as they
went in before. Process CPU, best of the repeats: noise only adds.

Group commits: a send run commits its outcomes as soon as ``concurrency`` of them wait
(``record/commits.py``), so that a ``kill -9`` loses about a group. What one such commit costs
(wall time of ``flush()``: the statements, the transaction and the WAL write), for groups of
16, 64 and 256 results, and what it adds a record against the bulk insert (the same results
committed 10,000 at a time): medians over every commit of ``rows`` results, into a file in the
benchmark's work folder (on the disk an output folder would be on, not /tmp).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from common import Row, log
from customer_import.contracts import EXTERNAL_ID, ROW, RecordStatus, ResultRow
from customer_import.record.journal import Journal

FLUSH = 10_000
STAMP = "2026-11-29T16:35:11.772Z"
GROUPS = (16, 64, 256)


@dataclass(frozen=True, slots=True)
class Plan:
    rows: int = 60_000  # 234 commits of 256, 3,750 of 16, 6 of 10,000
    repeats: int = 3


def executemany(
    self: Journal,
    columns: str,
    values: str,
    rows: Sequence[Sequence[object]],
    into: str = "INSERT INTO outcomes",
) -> None:
    if rows:
        self._db.executemany(f"{into} {columns} VALUES {values}", rows)


def as_rows(self: Journal, status: RecordStatus, frame: pl.DataFrame) -> int:
    """``add_unsent`` as it was: a row a record (added as results, inserted by the baseline)."""
    for row, external_id in frame.iter_rows():
        self.add_result(ResultRow(row, external_id, status, None, 0))
    return frame.height


def cost_us(kind: str, count: int, insert: Callable[..., None] | None) -> float:
    """Process CPU a row to add and flush ``count`` rows of ``kind`` (result or valid)."""
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "journal.sqlite")
        if insert is not None:
            journal._insert = insert.__get__(journal)  # type: ignore[method-assign]
            journal.add_unsent = as_rows.__get__(journal)  # type: ignore[method-assign]
        started = time.process_time()
        for start in range(1, count + 1, FLUSH):
            rows = range(start, min(count + 1, start + FLUSH))
            if kind == "valid":
                ids = pl.format("C-{}", pl.col(ROW).cast(pl.String).str.zfill(7))
                batch = pl.DataFrame({ROW: rows}).with_columns(ids.alias(EXTERNAL_ID))
                journal.add_unsent(RecordStatus.VALID, batch)
            else:
                for row in rows:
                    journal.add_result(_result(row))
            journal.flush()
        spent = time.process_time() - started
        journal.close()
    return spent / count * 1e6


def _result(row: int) -> ResultRow:
    return ResultRow(row, f"C-{row:07d}", RecordStatus.CREATED, 201, 1, STAMP, STAMP)


def commit_times_s(folder: Path, rows: int, group: int) -> list[float]:
    """Wall time of each ``flush()`` of ``group`` results, ``rows`` results in all (a last,
    smaller group left out)."""
    times = []
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        journal = Journal(Path(tmp) / "journal.sqlite")
        for start in range(1, rows - group + 2, group):
            for row in range(start, start + group):
                journal.add_result(_result(row))
            started = time.perf_counter()
            journal.flush()
            times.append(time.perf_counter() - started)
        journal.close()
    return times


@dataclass(frozen=True, slots=True)
class GroupCost:
    group: int
    commit_ms: float
    """Median wall time of one commit of ``group`` results."""
    record_us: float
    """``commit_ms`` a record."""
    bulk_record_us: float
    """A record's share of a 10,000-result commit (median of the repeats)."""

    @property
    def added_us(self) -> float:
        return self.record_us - self.bulk_record_us


def group_costs(folder: Path, plan: Plan) -> list[GroupCost]:
    """Every group size's commit cost against the bulk insert, repeats interleaved so that a
    slow spell of the machine falls on all of them alike."""
    bulk: list[float] = []
    commits: dict[int, list[float]] = {group: [] for group in GROUPS}
    for _ in range(plan.repeats):
        bulk += [t / FLUSH for t in commit_times_s(folder, plan.rows, FLUSH)]
        for group in GROUPS:
            commits[group] += commit_times_s(folder, plan.rows, group)
    bulk_us = statistics.median(bulk) * 1e6
    return [
        GroupCost(group, statistics.median(t) * 1e3, statistics.median(t) / group * 1e6, bulk_us)
        for group, t in commits.items()
    ]


def run(plan: Plan, work: Path) -> list[Row]:
    """The table's lines: one per group size."""
    log(f"journal: commits of {', '.join(map(str, GROUPS))} results, {plan.rows:,} results each")
    rows = []
    for cost in group_costs(work, plan):
        log(f"  group {cost.group}: {cost.commit_ms:.3f} ms a commit, {cost.record_us:.1f} us each")
        rows.append(
            Row(
                f"journal: a commit of {cost.group} results (concurrency {cost.group})",
                f"{cost.commit_ms:.3f} ms a commit = {cost.record_us:.1f} µs a record "
                f"({cost.added_us:+.1f} µs)",
                f"bulk insert {cost.bulk_record_us:.1f} µs a record",
                cost.record_us / cost.bulk_record_us,
                "report",
                None,
                {
                    "commit_ms": round(cost.commit_ms, 4),
                    "record_us": round(cost.record_us, 2),
                    "bulk_record_us": round(cost.bulk_record_us, 2),
                    "added_us": round(cost.added_us, 2),
                    "rows": plan.rows,
                    "repeats": plan.repeats,
                },
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--groups", action="store_true", help="the group commits of a send run")
    args = parser.parse_args()
    if args.groups:
        for cost in group_costs(Path(tempfile.gettempdir()), Plan(args.rows, args.repeats)):
            print(
                f"group {cost.group:3}: {cost.commit_ms:.3f} ms a commit, {cost.record_us:.1f} us "
                f"a record, bulk {cost.bulk_record_us:.1f} us ({cost.added_us:+.1f} us a record)"
            )
        return
    for kind in ("valid", "result"):
        job = min(cost_us(kind, args.rows, None) for _ in range(args.repeats))
        base = min(cost_us(kind, args.rows, executemany) for _ in range(args.repeats))
        print(f"{kind:6} rows: {job:.2f} us each, executemany {base:.2f} us ({job / base:.2f})")


if __name__ == "__main__":
    main()
