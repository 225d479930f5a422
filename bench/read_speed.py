"""How fast source.py reads a CSV into batches, and how much memory it holds.

    .venv/bin/python bench/read_speed.py [--rows 1000000] [--batch-size 50000] [--gzip]

Generates an 8-column CSV (ids with leading zeros, quoted commas, a few broken lines) in a
temporary directory, removes it afterwards, and prints rows/s for each phase and the process's
peak RSS. The file is never written into the repository. Each phase is read by the job's reader
(Polars for the clean stretches, the record parser for the rest) and by the record parser
alone, beside a bare ``pl.scan_csv`` of the same file (all columns as text): the ratios to that
read are the figures to compare across runs. ``--repeats`` reads take the median, of the wall
time and of the process's CPU time (the steadier figure on a shared machine).
"""

from __future__ import annotations

import argparse
import gzip
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from customer_import.config import SourceConfig
from customer_import.source import open_source
from customer_import.source.csv_file import _CsvBackend

HEADER = "id,first_name,last_name,email,phone,opt_in,created_at,note\n"


def write_csv(path: Path, rows: int, gzipped: bool) -> None:
    """Rows in the shape of a real export; every 100,000th line is ragged."""
    opener = gzip.open if gzipped else open
    with opener(path, "wt", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        for i in range(1, rows + 1):
            if i % 100_000 == 0:
                f.write(f"{i:08d},ragged\n")
                continue
            f.write(
                f'{i:08d},Jane{i % 97},"Doe, Jr.",jane{i}@example.com,+1 212 555 {i % 10_000:04d},'
                f"yes,2024-03-{i % 28 + 1:02d}T10:00:00,note {i % 13}\r\n"
            )


def read_all(
    path: Path, batch_size: int, columns: list[str] | None, parser_only: bool = False
) -> tuple[int, float, float]:
    """Records read (rows + broken), wall seconds, CPU seconds: open_source included."""
    _CsvBackend.record_parser_only = parser_only
    wall, cpu = time.perf_counter(), time.process_time()
    records = 0
    with open_source(SourceConfig(batch_size=batch_size), path) as source:
        for batch in source.batches(columns):
            records += batch.frame.height + len(batch.failures)
    _CsvBackend.record_parser_only = False
    return records, time.perf_counter() - wall, time.process_time() - cpu


def bare_polars(path: Path, columns: list[str] | None) -> tuple[int, float, float]:
    """The same file through ``pl.scan_csv`` alone, every column text, in batches."""
    wall, cpu = time.perf_counter(), time.process_time()
    scan = pl.scan_csv(path, infer_schema=False, truncate_ragged_lines=True)
    if columns is not None:
        scan = scan.select(columns)
    rows = sum(batch.height for batch in scan.collect_batches())
    return rows, time.perf_counter() - wall, time.process_time() - cpu


def median_read(
    repeats: int, read: Callable[[], tuple[int, float, float]]
) -> tuple[int, float, float]:
    """Records, the median wall seconds and the median CPU seconds of ``repeats`` reads (CPU:
    the process's, Polars' threads included; the figure to compare on a shared machine)."""
    runs = [read() for _ in range(repeats)]
    median = statistics.median
    return runs[0][0], median(wall for _, wall, _ in runs), median(cpu for _, _, cpu in runs)


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("bench.csv.gz" if args.gzip else "bench.csv")
        write_csv(path, args.rows, args.gzip)
        size_mb = path.stat().st_size / 1e6
        print(f"{args.rows:,} rows, 8 columns, {size_mb:.0f} MB ({path.name})")
        for label, columns in (("all columns", None), ("id column only", ["id"])):
            _, bare, bare_cpu = median_read(args.repeats, lambda c=columns: bare_polars(path, c))
            for reader, parser_only in (("job's reader", False), ("record parser", True)):
                records, wall, cpu = median_read(
                    args.repeats,
                    lambda c=columns, p=parser_only: read_all(path, args.batch_size, c, p),
                )
                print(
                    f"{label:15} {reader:14} {records:,} records in {wall:.2f} s "
                    f"({cpu:.2f} s CPU): {records / wall:,.0f} rows/s, {bare / wall:.2f} x bare "
                    f"pl.scan_csv ({bare:.2f} s, {bare_cpu:.2f} s CPU)"
                )
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
