"""Every benchmark of issues 7 and 17 in one run, printed as one table (``make bench``).

    .venv/bin/python bench/run_all.py                  # full: ~15-20 min on 2 cores
    .venv/bin/python bench/run_all.py --quick          # smaller sizes, ~3 min
    .venv/bin/python bench/run_all.py --only send      # send, rate, memory, journal, storm, dry

Columns: benchmark | figure | baseline | ratio (figure / baseline) | target (issue 7) | met?
The same rows, with the raw numbers of every repeat, go to bench/results/latest.json.
Inputs are generated into bench/data/ (git-ignored) and removed afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import dry_run
import incremental
import journal_writes
import memory
import rate_limit
import send_path
import storm
from common import RESULTS_DIR, ROOT, Row, log, work_dir

BENCHMARKS: Final = ("send", "rate", "memory", "journal", "storm", "dry", "nightly")
_COLUMNS: Final = ("benchmark", "figure", "baseline", "ratio", "target", "met?")


def plans(args: argparse.Namespace) -> dict[str, Any]:
    """Sizes and repeats for the full run, or the quick one."""
    if args.quick:
        send = send_path.Plan(
            records=10_000, rounds=1, job_rounds=1, duration_s=2.0, warmup_s=0.3, sequential_s=3.0
        )
        rate = rate_limit.Plan(records=3_000, timeout_s=90.0)
        mem = memory.Plan(sizes=(200_000, 1_000_000), cap_s=45.0)
        journal = journal_writes.Plan(rows=12_800, repeats=1)
        squall = storm.Plan(records=300, timeout_s=120.0)
    else:
        send, rate, mem = send_path.Plan(), rate_limit.Plan(), memory.Plan()
        journal, squall = journal_writes.Plan(), storm.Plan()
    if args.records:
        send = dataclasses.replace(send, records=args.records)
    if args.job_rounds:
        send = dataclasses.replace(send, job_rounds=args.job_rounds)
    if args.dry_run_cap:
        mem = dataclasses.replace(mem, cap_s=args.dry_run_cap)
    dry = dry_run.Plan(rounds=1, cap_s=45.0) if args.quick else dry_run.Plan()
    if args.dry_run_cap:
        dry = dataclasses.replace(dry, cap_s=args.dry_run_cap)
    chosen = {"send": send, "rate": rate, "memory": mem, "journal": journal, "storm": squall}
    nightly = incremental.Plan(rows=100_000) if args.quick else incremental.Plan()
    return chosen | {"dry": dry, "nightly": nightly}


def run_one(name: str, plan: Any, work: Path) -> list[Row]:
    runners: dict[str, Callable[[Any, Path], list[Row]]] = {
        "send": send_path.run,
        "rate": rate_limit.run,
        "memory": memory.run,
        "dry": dry_run.run,
        "nightly": incremental.run,
        "journal": journal_writes.run,
        "storm": storm.run,
    }
    started = time.perf_counter()
    try:
        rows = runners[name](plan, work)
    except Exception as exc:  # one broken benchmark must not hide the others
        traceback.print_exc()
        rows = [Row(f"{name}: ERROR", f"{type(exc).__name__}: {exc}"[:300], target="-")]
    log(f"{name} took {time.perf_counter() - started:.0f} s")
    return rows


def format_table(rows: list[Row]) -> str:
    cells = [[_cell(row, column) for column in _COLUMNS] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(_COLUMNS)]
    lines = [_line(_COLUMNS, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(r, widths) for r in cells]
    return "\n".join(lines)


def _cell(row: Row, column: str) -> str:
    if column == "ratio":
        return "-" if row.ratio is None else f"{row.ratio:.2f}"
    if column == "met?":
        return {True: "yes", False: "NO", None: "-"}[row.met]
    return str(getattr(row, column))


def _line(cells: list[str] | tuple[str, ...], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def noise_notes(rows: list[Row]) -> list[str]:
    """Repeats that disagreed by more than 20 % (the machine is shared)."""
    notes = []
    for row in rows:
        spread = row.details.get("spread")  # only the bare-loop rows carry one
        if isinstance(spread, float) and spread > 0.2:
            notes.append(f"noisy: {row.figure}: repeats differ by {spread:.0%} of the median")
    return notes


def environment() -> dict[str, Any]:
    packages = ("httpx", "httpx-aiohttp", "aiohttp", "uvloop", "polars", "phonenumbers")
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "git": _git_state(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "versions": versions,
    }


def _git_state() -> dict[str, Any]:
    """The commit measured, and whether the work tree differed from it (read-only git)."""

    def git(*args: str) -> str:
        command = ["git", "-C", str(ROOT), *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    changed = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return {"commit": git("rev-parse", "HEAD"), "src_changed_files": len(changed.splitlines())}


def write_json(path: Path, args: argparse.Namespace, rows: list[Row], started: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "only": args.only,
        "duration_s": round(time.perf_counter() - started, 1),
        "environment": environment(),
        "rows": [row.as_json() for row in rows],
    }
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one round")
    parser.add_argument(
        "--only",
        type=lambda s: [b.strip() for b in s.split(",") if b.strip()],
        default=list(BENCHMARKS),
        help="comma-separated: " + ", ".join(BENCHMARKS),
    )
    parser.add_argument("--records", type=int, help="records of the send-path job")
    parser.add_argument(
        "--job-rounds", type=int, help="rounds without latency (a job run each) and of --workers 2"
    )
    parser.add_argument("--dry-run-cap", type=float, help="seconds before a dry run is stopped")
    parser.add_argument("--keep", action="store_true", help="keep bench/data/run-*/")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "latest.json")
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}: use {', '.join(BENCHMARKS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    log(f"load average before: {os.getloadavg()}")
    rows: list[Row] = []
    selected = plans(args)
    with work_dir(keep=args.keep) as work:
        for name in BENCHMARKS:
            if name in args.only:
                rows += run_one(name, selected[name], work)
    print(format_table(rows))
    for note in noise_notes(rows):
        print(note)
    elapsed = time.perf_counter() - started
    print(f"{'quick' if args.quick else 'full'} run in {elapsed:.0f} s; load {os.getloadavg()}")
    write_json(args.json, args, rows, started)
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
