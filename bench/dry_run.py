"""Issue 20's dry-run line: ``run --dry-run`` over generated records beside a bare Polars read.

    .venv/bin/python bench/dry_run.py [--records 1000000] [--rounds 3]
    .venv/bin/python bench/run_all.py --only dry

Each round reads the generated CSV with ``pl.scan_csv`` alone (every column text, in batches:
the speed of the columns), then runs the job's dry run over the same file; the ratio of the two
rates, measured a few seconds apart, is the figure that survives other load on the machine. The
job runs in a child process started through this script, which times the journal's writes
(``Journal._write``: the SQLite inserts, in the thread that commits) and nothing else. A last
run skips those inserts (its status is then not ``completed``: the journal holds no outcome),
to show what the dry run costs without them; another reads the CSV with the record parser
alone (``_CsvBackend.record_parser_only``), as before Polars read the clean stretches.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from common import BENCH_DIR, Row, at_least, child_env, log, median, rate, run_child, work_dir
from data import write_csv, write_job

GOAL: Final = 500_000.0


@dataclass(frozen=True, slots=True)
class Plan:
    records: int = 1_000_000
    rounds: int = 3
    cap_s: float = 210.0


@dataclass(frozen=True, slots=True)
class Round:
    bare_per_s: float
    job_per_s: float
    duration_s: float
    journal_s: float
    journal_cpu_s: float
    cpu_s: float


def bare_read(csv: Path) -> float:
    """Rows a second of a bare ``pl.scan_csv`` of the file, every column text."""
    started = time.perf_counter()
    scan = pl.scan_csv(csv, infer_schema=False, truncate_ragged_lines=True)
    rows = sum(batch.height for batch in scan.collect_batches())
    return rows / (time.perf_counter() - started)


def job_run(job_file: Path, out: Path, plan: Plan, mode: str) -> tuple[dict[str, Any], Any]:
    """The dry run in a child; its summary and what this script's wrapper measured."""
    report = out.with_suffix(".journal.json")
    command = [sys.executable, str(BENCH_DIR / "dry_run.py"), "--child", mode, str(report)]
    command += ["--", "run", str(job_file), "--no-progress", "--out", str(out), "--dry-run"]
    child = run_child(command, timeout_s=plan.cap_s, env=child_env())
    summary_file = out / "summary.json"
    if not summary_file.exists():
        raise RuntimeError(f"the job wrote no summary (exit {child.returncode}): {child.stderr}")
    return json.loads(summary_file.read_text()), (child, json.loads(report.read_text()))


def one_round(csv: Path, job_file: Path, plan: Plan, work: Path, k: int) -> Round:
    bare = bare_read(csv)
    summary, (child, journal) = job_run(job_file, work / f"out-{k}", plan, "timed")
    duration = float(summary["duration_s"])
    per_s = int(summary["rows"]) / duration
    log(
        f"  round {k}: bare read {rate(bare)}, dry run {rate(per_s)} ({duration:.2f} s, "
        f"{summary['status']}, {child.cpu_s:.1f} s CPU), journal writes {journal['wall_s']:.2f} s "
        f"({journal['cpu_s']:.2f} s CPU)"
    )
    return Round(bare, per_s, duration, journal["wall_s"], journal["cpu_s"], child.cpu_s)


def run(plan: Plan, work: Path) -> list[Row]:
    csv = write_csv(work / "dry.csv", plan.records)
    job_file = write_job(work / "dry.toml", csv, work / "out")
    log(f"dry run vs bare read: {plan.records:,} records, {csv.stat().st_size / 1e6:.0f} MB")
    rounds = [one_round(csv, job_file, plan, work, k) for k in range(plan.rounds)]
    summary, _ = job_run(job_file, work / "out-skipped", plan, "skip")
    skipped = int(summary["rows"]) / float(summary["duration_s"])
    log(f"  without the journal's inserts: {rate(skipped)}")
    summary, _ = job_run(job_file, work / "out-parser", plan, "parser")
    parser = int(summary["rows"]) / float(summary["duration_s"])
    log(f"  with the record parser alone: {rate(parser)}")
    return rows(plan, rounds, skipped, parser)


def rows(plan: Plan, rounds: list[Round], skipped: float, parser: float) -> list[Row]:
    job = median([r.job_per_s for r in rounds])
    bare = median([r.bare_per_s for r in rounds])
    ratio = median([r.job_per_s / r.bare_per_s for r in rounds])
    share = median([r.journal_s / r.duration_s for r in rounds])
    details = {"rounds": [_as_dict(r) for r in rounds], "without_journal_inserts": skipped}
    return [
        Row(
            f"20 dry run: records/s, {plan.records:,} records",
            rate(job),
            f"bare pl.scan_csv {rate(bare)}",
            ratio,
            f">= {rate(GOAL)}",
            at_least(job / GOAL, 1.0),
            details,
        ),
        Row(
            "20 dry run: journal writes (SQLite inserts)",
            f"{median([r.journal_s for r in rounds]):.2f} s in the commit thread "
            f"({median([r.journal_cpu_s for r in rounds]):.2f} s CPU)",
            f"{median([r.duration_s for r in rounds]):.2f} s run",
            share,
        ),
        Row("20 dry run: without the journal's inserts", rate(skipped), rate(job), skipped / job),
        Row(
            "20 dry run: CSV read by the record parser alone", rate(parser), rate(job), parser / job
        ),
    ]


def _as_dict(r: Round) -> dict[str, float]:
    return {name: getattr(r, name) for name in Round.__slots__}


def child(mode: str, report: Path, argv: Sequence[str]) -> int:
    """Run the CLI with ``Journal._write`` timed (or skipped, ``mode == "skip"``), then write
    what it took; ``mode == "parser"``: every CSV record read by the record parser."""
    from customer_import import cli
    from customer_import.record.journal import Journal
    from customer_import.source.csv_file import _CsvBackend

    _CsvBackend.record_parser_only = mode == "parser"
    spent = {"wall_s": 0.0, "cpu_s": 0.0}
    write = Journal._write

    def timed(self: Journal, *args: Any) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            if mode != "skip":
                write(self, *args)
        finally:
            spent["wall_s"] += time.perf_counter() - wall
            spent["cpu_s"] += time.thread_time() - cpu

    Journal._write = timed  # type: ignore[method-assign]
    try:
        return cli.main(list(argv))
    finally:
        report.write_text(json.dumps(spent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=Plan.records)
    parser.add_argument("--rounds", type=int, default=Plan.rounds)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "REPORT"))
    args, rest = parser.parse_known_args()
    if args.child:
        sys.exit(child(args.child[0], Path(args.child[1]), [a for a in rest if a != "--"]))
    with work_dir(keep=args.keep) as work:
        for row in run(Plan(args.records, args.rounds), work):
            print(f"{row.benchmark} | {row.figure} | {row.baseline} | {row.ratio} | {row.target}")


if __name__ == "__main__":
    main()
