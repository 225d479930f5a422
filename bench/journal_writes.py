"""The journal's write cost a row: several rows a statement (the job) against ``executemany``.

    .venv/bin/python bench/journal_writes.py            # 200,000 rows of each kind, best of 3

Writes through the real ``Journal`` in flushes of 10,000 rows (the dry run's batch), into a
fresh file each repeat; the baseline is the same journal with its ``_insert`` replaced by one
``executemany`` (one statement a row). Process CPU, best of the repeats: noise only adds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from customer_import.contracts import ResultRow
from customer_import.record.journal import Journal

FLUSH = 10_000
STAMP = "2026-11-29T16:35:11.772Z"


def executemany(self: Journal, columns: str, values: str, rows: Sequence[Sequence[object]]) -> None:
    self._db.executemany(f"INSERT INTO outcomes {columns} VALUES {values}", rows)


def cost_us(kind: str, count: int, insert: Callable[..., None] | None) -> float:
    """Process CPU a row to add and flush ``count`` rows of ``kind`` (result or valid)."""
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "journal.sqlite")
        if insert is not None:
            journal._insert = insert.__get__(journal)  # type: ignore[method-assign]
        started = time.process_time()
        for start in range(1, count + 1, FLUSH):
            rows = range(start, min(count + 1, start + FLUSH))
            if kind == "valid":
                journal.add_valid((row, f"C-{row:07d}") for row in rows)
            else:
                for row in rows:
                    journal.add_result(
                        ResultRow(row, f"C-{row:07d}", "created", 201, 1, STAMP, STAMP)
                    )
            journal.flush()
        spent = time.process_time() - started
        journal.close()
    return spent / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for kind in ("valid", "result"):
        job = min(cost_us(kind, args.rows, None) for _ in range(args.repeats))
        base = min(cost_us(kind, args.rows, executemany) for _ in range(args.repeats))
        print(f"{kind:6} rows: {job:.2f} us each, executemany {base:.2f} us ({job / base:.2f})")


if __name__ == "__main__":
    main()
