"""results.csv, rejects.csv, missing.csv and summary.json, rendered from the journal.

Each file is written to a temporary name and renamed into place, so a reader (or a crash)
never sees half a file. Files that hold customer data are created readable by the owner only.
A CSV cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``,
a tab or a CR) is written with a leading apostrophe; reading the tool's own rejects file back
removes exactly that apostrophe (``source.csv_file``), so a fixed rejects file round-trips.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

from customer_import.contracts import FORMULA_CHARS, REJECTS_TRAILER, RecordStatus, RunSummary
from customer_import.errors import StorageFault
from customer_import.outputs.summary import summary_json
from customer_import.record.journal import Journal

RESULTS_NAME: Final = "results.csv"
REJECTS_NAME: Final = "rejects.csv"
SUMMARY_NAME: Final = "summary.json"
MISSING_NAME: Final = "missing.csv"
PENDING_NAME: Final = "pending.csv"
LINEAGE: Final = ("source_row", "source_file")
"""Columns of a fed back rejects file's results and rejects: where each record first was.
In rejects.csv they come just before ``_row,_stage,_reason,_raw``."""
_MISSING_LABELS: Final[dict[object, str]] = {
    RecordStatus.CREATED: "deactivated",
    RecordStatus.UPDATED: "deactivated",
    RecordStatus.REJECTED: "failed",
}
MISSING_HEADER: Final = ("externalId", "status", "http_status", "attempts", "updated_at", "reason")

RESULTS_HEADER: Final = (
    "row",
    "externalId",
    "status",
    "http_status",
    "attempts",
    "created_at",
    "updated_at",
    "detail",
    "warnings",
)


@contextmanager
def atomic_text(path: Path) -> Iterator[IO[str]]:
    """Write ``path`` via a temporary file in the same folder, then rename; mode 0600.
    StorageFault when it cannot be written (a full disk): the file before it stays as it was."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as exc:
        raise StorageFault(path, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_results(journal: Journal, out_dir: Path, *, lineage: bool = False) -> None:
    """``lineage``: a fed back rejects file's results end with source_row, source_file."""
    with atomic_text(out_dir / RESULTS_NAME) as handle:
        writer = csv.writer(handle)
        writer.writerow([*RESULTS_HEADER, *(LINEAGE if lineage else ())])
        writer.writerows(journal.results(lineage=lineage))


def write_rejects(
    journal: Journal, out_dir: Path, header: list[str], *, lineage: bool = False
) -> None:
    """The source's own header (dropped columns left out), then (``lineage``) source_row and
    source_file, then _row,_stage,_reason,_raw."""
    origins = journal.lineage() if lineage else {}
    with atomic_text(out_dir / REJECTS_NAME) as handle:
        writer = csv.writer(handle)
        writer.writerow([*map(sheet_safe, header), *(LINEAGE if lineage else ()), *REJECTS_TRAILER])
        for row, source, stage, reason, raw in journal.rejects():
            values = source if source else [""] * len(header)
            origin = [sheet_safe(v) for v in origins.get(row, ("", ""))] if lineage else []
            tail = [row, stage, *map(sheet_safe, (reason, raw))]
            writer.writerow([*map(sheet_safe, values), *origin, *tail])


def write_pending(rows: Iterable[int], out_dir: Path) -> int:
    """An abandoned run's records that never got an outcome; returns how many."""
    count = 0
    with atomic_text(out_dir / PENDING_NAME) as handle:
        writer = csv.writer(handle)
        writer.writerow(["row"])
        for row in rows:
            writer.writerow([row])
            count += 1
    return count


def sheet_safe(text: str | None) -> str:
    """The cell as written: a leading apostrophe where a spreadsheet would see a formula
    (after any apostrophes, so that reading back removes exactly the one added)."""
    if not text:
        return ""
    first = text.lstrip("'")[:1]
    return f"'{text}" if first and first in FORMULA_CHARS else text


def write_missing(ids: list[str], journal: Journal, out_dir: Path) -> None:
    """Incremental sync: customers gone from the export since the last run, and what was done."""
    done = journal.deactivations()
    with atomic_text(out_dir / MISSING_NAME) as handle:
        writer = csv.writer(handle)
        writer.writerow(MISSING_HEADER)
        for external_id in ids:
            status, *rest = done.get(external_id, (None,) * 5)
            cells = _blank_nones((external_id, _MISSING_LABELS.get(status, "listed"), *rest))
            writer.writerow([sheet_safe(c) if isinstance(c, str) else c for c in cells])


def write_summary(summary: RunSummary, out_dir: Path) -> None:
    with atomic_text(out_dir / SUMMARY_NAME) as handle:
        json.dump(summary_json(summary), handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def _blank_nones(values: tuple[object, ...]) -> list[object]:
    return ["" if v is None else v for v in values]


def rejects_columns(
    columns: list[str], header: list[str], drop: list[str]
) -> tuple[list[str], list[str]]:
    """Unique names and original header names of the columns the rejects file may carry.

    Columns in ``drop_columns`` are never copied. When the input is an earlier run's
    rejects.csv, its trailing _row/_stage/_reason/_raw describe that run, not the customer,
    and so do the source_row/source_file before them (a rejects file of a fed back one).
    """
    dropped = {d.strip().casefold() for d in drop}
    pairs = list(zip(columns, header, strict=True))
    if tuple(header[-len(REJECTS_TRAILER) :]) == REJECTS_TRAILER:
        pairs = pairs[: -len(REJECTS_TRAILER)]
        if tuple(h for _, h in pairs[-len(LINEAGE) :]) == LINEAGE:
            pairs = pairs[: -len(LINEAGE)]
    kept = [(c, h) for c, h in pairs if h.strip().casefold() not in dropped]
    return [c for c, _ in kept], [h for _, h in kept]
