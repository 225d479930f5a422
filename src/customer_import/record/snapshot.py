"""Incremental sync state: what the API holds, per externalId, after the last runs.

The snapshot is a table of ``externalId, body, in_last_export`` (Parquet segments, see
``segments.py``): the exact, normalised request body last upserted successfully for each
id. A record whose body is the snapshot's is ``unchanged`` and not sent. No hash is stored
(Polars' ``hash`` may change between versions, so stored hashes could silently stop
matching): once a run, two 64-bit hashes of each (id, body) are computed as the snapshot is
read, into an index sorted by the first (16 bytes a customer), and each batch is looked up
in it with ``search_sorted``: a record is unchanged when both hashes, 128 bits, are the
snapshot's. All in columns.

While a run sends, the bodies it sends and the ids it reads are appended to Parquet parts
in a work folder; at the end the snapshot is rebuilt, a slice at a time, from the old one
and the parts whose rows the journal records as created/updated, into a new generation that
``meta.json`` names once it is all written: a crash never marks an unsent record as synced.

State is keyed by job name, base URL and merchant id: a staging run never suppresses a
production send.

The state holds what customers' records say: its folders are 0700 and its files 0600 (a
segment is written inside a 0700 folder that nothing names yet, then made 0600).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from customer_import.config import JobConfig
from customer_import.contracts import EXTERNAL_ID
from customer_import.record.locks import LOCK_NAME, FolderLock, private_file, private_folder
from customer_import.record.segments import (
    FORMAT,
    GenerationWriter,
    durable,
    members,
    remove_others,
    segment_files,
    slices,
    sorted_ids,
)

log = logging.getLogger("customer_import")

ID: Final = EXTERNAL_ID
BODY: Final = "body"
SEEN: Final = "in_last_export"
META_NAME: Final = "meta.json"
_SEEDS: Final = (1, 2)
"""Two hashes of each body, seeded apart: 128 bits, computed by this process on both sides."""


def mapping_fingerprint(job: JobConfig) -> str:
    """What shapes the request bodies: a change means every record is sent once."""
    relevant = job.model_dump_json(include={"mapping"}) + json.dumps(job.source.null_values)
    return hashlib.sha256(relevant.encode()).hexdigest()


def state_key(job_name: str, base_url: str, merchant_id: str) -> str:
    digest = hashlib.sha256(f"{job_name}\n{base_url}\n{merchant_id}".encode()).hexdigest()
    return f"{job_name}-{digest[:12]}"


@dataclass(frozen=True, slots=True)
class StateLocation:
    root: Path
    key: str

    @property
    def folder(self) -> Path:
        return self.root / self.key

    @property
    def meta(self) -> Path:
        return self.folder / META_NAME

    @property
    def work(self) -> Path:
        """Parts written during a run (bodies sent, ids read); removed once merged."""
        return self.folder / "work"


class Snapshot:
    """Read side: which records are unchanged since the last successful upsert."""

    def __init__(self, location: StateLocation, fingerprint: str) -> None:
        self.location = location
        meta = read_meta(location)
        self.files = segment_files(location.folder, meta)
        self.usable = _usable(location, self.files, meta, fingerprint)
        self._index: pl.DataFrame | None = None
        self._loading = threading.Lock()  # batches are prepared by several threads

    def unchanged_mask(self, ids: pl.Series, bodies: pl.Series) -> pl.Series:
        """True where the snapshot holds this body for this id."""
        if not self.usable or ids.is_empty():
            return pl.Series(values=[False] * len(ids), dtype=pl.Boolean)
        return _matches(self._loaded(), ids, bodies)

    def _loaded(self) -> pl.DataFrame:
        with self._loading:
            if self._index is None:
                self._index = _read_index(self.files or [])
            return self._index

    def last_export_ids(self) -> pl.Series | None:
        """The ids of the last export (None without a usable snapshot); no body is read."""
        if not self.usable:
            return None
        if not self.files:
            return pl.Series(ID, [], dtype=pl.String)
        return pl.scan_parquet(self.files).filter(pl.col(SEEN)).select(ID).collect()[ID]

    def last_export_size(self) -> int:
        ids = self.last_export_ids()
        return 0 if ids is None else len(ids)


def _digests(ids: pl.Expr, bodies: pl.Expr) -> list[pl.Expr]:
    """Two hashes of each (id, body), seeded apart: 128 bits."""
    pair = pl.struct(ids.alias(ID), bodies.alias(BODY))
    return [pair.hash(seed).alias(f"_h{seed}") for seed in _SEEDS]


def _read_index(files: list[Path]) -> pl.DataFrame:
    """The hashes of every (id, body) of the snapshot, sorted by the first: 16 bytes a
    customer, whatever the bodies' size (they are hashed as they are read)."""
    schema = {f"_h{seed}": pl.UInt64 for seed in _SEEDS}
    if not files:
        return pl.DataFrame(schema=schema)
    scan = pl.scan_parquet(files).select(_digests(pl.col(ID), pl.col(BODY)))
    return scan.collect().sort(next(iter(schema)))


def _matches(index: pl.DataFrame, ids: pl.Series, bodies: pl.Series) -> pl.Series:
    """Binary search of each record's first hash in the index, then the second compared:
    only a record whose id and body are both the snapshot's matches."""
    if index.is_empty():
        return pl.Series(values=[False] * len(ids), dtype=pl.Boolean)
    mine = pl.DataFrame({ID: ids, BODY: bodies}).select(_digests(pl.col(ID), pl.col(BODY)))
    first, *others = mine.columns
    at = index[first].search_sorted(mine[first], side="left").clip(upper_bound=index.height - 1)
    found = index[at]
    same = found[first] == mine[first]
    for column in others:
        same = same & (found[column] == mine[column])
    return same.fill_null(False).alias("unchanged")


def _usable(
    location: StateLocation, files: list[Path] | None, meta: dict[str, Any], fingerprint: str
) -> bool:
    if files is None:
        log.info("incremental: no snapshot yet for %s: every record is sent", location.key)
        return False
    if meta.get("mapping") != fingerprint:
        log.info(
            "incremental: the mapping changed since the snapshot was taken: every record is sent"
        )
        return False
    return True


def read_meta(location: StateLocation) -> dict[str, Any]:
    try:
        value = json.loads(location.meta.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class PartWriter:
    """Appends the bodies a run sends and the ids it reads, one Parquet file a batch."""

    def __init__(self, folder: Path) -> None:
        self._dir = private_folder(folder)
        self._count = len(list(self._dir.glob("*.parquet")))

    def sent(self, rows: pl.Series, ids: pl.Series, bodies: pl.Series) -> None:
        self._write("sent", pl.DataFrame({"_row": rows, ID: ids, BODY: bodies}))

    def seen(self, ids: pl.Series) -> None:
        self._write("seen", pl.DataFrame({ID: ids.drop_nulls()}))

    def _write(self, kind: str, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        self._count += 1
        path = self._dir / f"{kind}-{self._count:06d}.parquet"
        tmp = path.with_suffix(".tmp")
        frame.write_parquet(tmp)
        private_file(tmp).replace(path)


def merge(
    location: StateLocation,
    fingerprint: str,
    succeeded_rows: pl.Series,
    *,
    export_complete: bool,
) -> int:
    """Rebuild the snapshot with the bodies whose upsert succeeded; returns its size.

    ``export_complete``: the run read the whole export, so ``in_last_export`` can be reset
    to exactly the ids it saw. A snapshot taken under another mapping still says what the
    API holds: it is kept. One slice of the old snapshot, or one part, in memory at a time.
    """
    meta = read_meta(location)
    keepers = _sent_keepers(location.work, succeeded_rows)
    sent_ids = sorted_ids(keepers[ID])
    seen = sorted_ids(_seen_ids(location.work)) if export_complete else None
    writer = GenerationWriter(location.folder, meta.get("generation"))
    for old in slices(segment_files(location.folder, meta) or [], [ID, BODY, SEEN]):
        writer.add(_flagged(old.filter(~members(old[ID], sent_ids)), seen))
    for sent in _sent_bodies(location.work, keepers):
        writer.add(_flagged(sent.with_columns(pl.lit(True).alias(SEEN)), seen))
    generation = writer.close()
    _write_meta(location, fingerprint, writer.rows, generation)
    remove_others(location.folder, generation)
    shutil.rmtree(location.work, ignore_errors=True)
    return writer.rows


def _flagged(frame: pl.DataFrame, seen: pl.Series | None) -> pl.DataFrame:
    if seen is None:
        return frame
    return frame.with_columns(members(frame[ID], seen).alias(SEEN))


def _sent_parts(work: Path) -> list[Path]:
    return sorted(work.glob("sent-*.parquet"))


def _sent_keepers(work: Path, rows: pl.Series) -> pl.DataFrame:
    """(part, position, id) of the bodies whose upsert succeeded, the last one of each id
    (a resumed run writes its pending records' bodies again): ids only, no body."""
    schema = {"_part": pl.Int64, "_pos": pl.UInt32, ID: pl.String}
    scans = [
        pl.scan_parquet(path).select(ID, "_row").with_row_index("_pos").with_columns(_part=part)
        for part, path in enumerate(_sent_parts(work))
    ]
    if not scans:
        return pl.DataFrame(schema=schema)
    sent = pl.concat(scans).collect()
    done = sent.filter(pl.col("_row").is_in(rows.implode()))
    last = done.unique(subset=[ID], keep="last", maintain_order=True)
    return last.select(pl.col("_part").cast(pl.Int64), "_pos", ID)


def _sent_bodies(work: Path, keepers: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """The kept bodies (``ID``, ``BODY``), a part at a time."""
    for part, path in enumerate(_sent_parts(work)):
        wanted = keepers.filter(pl.col("_part") == part)["_pos"]
        if wanted.is_empty():
            continue
        frame = pl.read_parquet(path, columns=[ID, BODY]).with_row_index("_pos")
        yield frame.filter(pl.col("_pos").is_in(wanted.implode())).select(ID, BODY)


def _seen_ids(work: Path) -> pl.Series:
    parts = sorted(work.glob("seen-*.parquet"))
    if not parts:
        return pl.Series(ID, [], dtype=pl.String)
    return pl.scan_parquet(parts).select(ID).collect()[ID]


def _write_meta(location: StateLocation, fingerprint: str, size: int, generation: str) -> None:
    """The commit of a merge: ``generation`` is the snapshot from the moment this renames."""
    meta = {
        "format": FORMAT,
        "generation": generation,
        "mapping": fingerprint,
        "records": size,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = location.meta.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    durable(private_file(tmp))
    tmp.replace(location.meta)
    durable(location.folder)


def missing_since_last_run(snapshot: Snapshot, work: Path) -> pl.Series:
    """Ids in the last export that this export lacks, sorted (no body is read)."""
    last = snapshot.last_export_ids()
    if last is None or last.is_empty():
        return pl.Series(ID, [], dtype=pl.String)
    return last.filter(~members(last, sorted_ids(_seen_ids(work)))).sort()


def last_bodies(snapshot: Snapshot, ids: pl.Series) -> pl.DataFrame:
    """The snapshot's ``ID, BODY`` of ``ids`` (sorted by id): the id column is read first,
    and only the matching rows' bodies."""
    if ids.is_empty() or not snapshot.files:
        return pl.DataFrame(schema={ID: pl.String, BODY: pl.String})
    wanted = pl.scan_parquet(snapshot.files).filter(pl.col(ID).is_in(ids.implode()))
    return wanted.select(ID, BODY).collect().sort(ID)


def job_states(root: Path, job_name: str) -> list[StateLocation]:
    """Every state kept for a job (one per base URL and merchant id it ran against)."""
    if not root.is_dir():
        return []
    return [StateLocation(root, p.name) for p in sorted(root.glob(f"{job_name}-*")) if p.is_dir()]


def describe(location: StateLocation, fingerprint: str) -> dict[str, Any]:
    meta = read_meta(location)
    described: dict[str, Any] = {"state": location.key, "folder": str(location.folder)}
    files = segment_files(location.folder, meta)
    if files is not None:
        described.update(customers=0, in_last_export=0)
    if files:
        counts = (
            pl.scan_parquet(files)
            .select(pl.len().alias("customers"), pl.col(SEEN).sum().alias("in_last_export"))
            .collect()
            .row(0, named=True)
        )
        described.update(counts)
    described["updated_at"] = meta.get("updated_at")
    described["mapping_unchanged"] = meta.get("mapping") == fingerprint
    described["unfinished_run_parts"] = location.work.is_dir()
    return described


def reset(location: StateLocation) -> None:
    """Forget the state: the next run sends every record. Refused while a run holds it."""
    with FolderLock(location.folder, "the incremental state", private=True):
        for entry in location.folder.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            elif entry.name != LOCK_NAME:
                entry.unlink()
