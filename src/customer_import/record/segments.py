"""The snapshot's storage: Parquet segments of at most ``SEGMENT_ROWS`` customers, in a
generation folder that ``meta.json`` names.

Why segments: a snapshot of millions of bodies is read and rewritten a slice at a time, so
a nightly run's memory does not grow with the number of customers (Polars reading or
sinking one large file holds a large part of it at once). Why generations: a merge writes a
new folder beside the current one and then renames ``meta.json`` (which names it) into
place, the one atomic step; a crash before it leaves the old generation current, and the
stray folder is removed by the next merge. Files are fsynced before that rename.

Format 1 (before segments) was one ``snapshot.parquet``: it is read the same way, a slice
at a time, and replaced by a generation at the next merge.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import polars as pl

from customer_import.record.locks import private_file, private_folder

SEGMENT_ROWS: Final = 50_000
FORMAT: Final = 2
LEGACY_NAME: Final = "snapshot.parquet"
_GENERATION: Final = "snapshot-"


def segment_files(folder: Path, meta: dict[str, Any]) -> list[Path] | None:
    """The current snapshot's files (None when there is none)."""
    name = meta.get("generation")
    if isinstance(name, str) and name.startswith(_GENERATION):
        return sorted((folder / name).glob("*.parquet"))
    legacy = folder / LEGACY_NAME
    return [legacy] if legacy.exists() else None


def slices(files: list[Path], columns: list[str]) -> Iterator[pl.DataFrame]:
    """``columns`` of every row, at most ``SEGMENT_ROWS`` rows at a time."""
    for path in files:
        scan = pl.scan_parquet(path).select(columns)
        rows = int(pl.scan_parquet(path).select(pl.len()).collect().item())
        for start in range(0, rows, SEGMENT_ROWS):
            yield scan.slice(start, SEGMENT_ROWS).collect()


def sorted_ids(ids: pl.Series) -> pl.Series:
    return ids.drop_nulls().sort()


def members(ids: pl.Series, among: pl.Series) -> pl.Series:
    """Whether each of ``ids`` is in ``among`` (sorted): a binary search each, so a large
    ``among`` is not hashed again for every slice."""
    if among.is_empty():
        return pl.Series(values=[False] * len(ids), dtype=pl.Boolean)
    at = among.search_sorted(ids, side="left").clip(upper_bound=len(among) - 1)
    return (among.gather(at) == ids).fill_null(False)


class GenerationWriter:
    """Writes a new generation folder, re-cut into segments of ``SEGMENT_ROWS`` rows."""

    def __init__(self, folder: Path, previous: str | None) -> None:
        number = int(previous.removeprefix(_GENERATION)) + 1 if previous else 1
        self.name = f"{_GENERATION}{number:06d}"
        self._dir = folder / self.name
        shutil.rmtree(self._dir, ignore_errors=True)  # a crashed merge's
        private_folder(self._dir)
        self._pending: list[pl.DataFrame] = []
        self._buffered = 0
        self._written = 0
        self.rows = 0

    def add(self, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        self._pending.append(frame)
        self._buffered += frame.height
        while self._buffered >= SEGMENT_ROWS:
            whole = pl.concat(self._pending)
            self._write(whole.head(SEGMENT_ROWS))
            rest = whole.slice(SEGMENT_ROWS)
            self._pending, self._buffered = [rest], rest.height

    def close(self) -> str:
        """Writes what is left and makes every file durable; returns the folder's name."""
        if self._buffered:
            self._write(pl.concat(self._pending))
        self._pending, self._buffered = [], 0
        durable(self._dir)
        return self.name

    def _write(self, frame: pl.DataFrame) -> None:
        path = self._dir / f"part-{self._written:05d}.parquet"
        frame.write_parquet(path)
        durable(private_file(path))
        self._written += 1
        self.rows += frame.height


def durable(path: Path) -> None:
    """fsync a file or a folder (its entries), so a rename that follows survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_others(folder: Path, current: str) -> None:
    """Generations other than ``current``, and the format-1 file, once it is committed."""
    for entry in folder.glob(f"{_GENERATION}*"):
        if entry.name != current and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
    (folder / LEGACY_NAME).unlink(missing_ok=True)
