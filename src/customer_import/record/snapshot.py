"""Incremental sync state: what the API holds, per externalId, after the last runs.

The snapshot is a Parquet file of ``externalId, body, in_last_export``: the exact,
normalised request body last upserted successfully for each id. A record whose body is
byte-for-byte the snapshot's is ``unchanged`` and not sent. Exact values are compared
(no hash that could change between library versions), batch by batch with Polars joins.

While a run sends, the bodies it sends and the ids it reads are appended to Parquet parts
in a work folder; at the end the snapshot is rebuilt from the old one and the parts whose
rows the journal records as created/updated, written to a temporary file and renamed, so
a crash never marks an unsent record as synced.

State is keyed by job name, base URL and merchant id: a staging run never suppresses a
production send.

The state holds what customers' records say: its folders are 0700 and its files 0600, each
written under a temporary name with those permissions and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from customer_import.config import JobConfig
from customer_import.contracts import EXTERNAL_ID
from customer_import.record.locks import LOCK_NAME, FolderLock, private_file, private_folder

log = logging.getLogger("customer_import")

ID: Final = EXTERNAL_ID
BODY: Final = "body"
SEEN: Final = "in_last_export"
SNAPSHOT_NAME: Final = "snapshot.parquet"
META_NAME: Final = "meta.json"
_SCHEMA: Final = {ID: pl.String, BODY: pl.String, SEEN: pl.Boolean}


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
    def snapshot(self) -> Path:
        return self.folder / SNAPSHOT_NAME

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
        self.usable = _usable(location, fingerprint)

    def unchanged_mask(self, ids: pl.Series, bodies: pl.Series) -> pl.Series:
        """True where the snapshot holds exactly this body for this id."""
        if not self.usable or ids.is_empty():
            return pl.Series(values=[False] * len(ids), dtype=pl.Boolean)
        known = (
            pl.scan_parquet(self.location.snapshot)
            .filter(pl.col(ID).is_in(ids.implode()))
            .select(ID, pl.col(BODY).alias("_known"))
            .collect()
        )
        frame = pl.DataFrame({ID: ids, BODY: bodies}).join(
            known, on=ID, how="left", maintain_order="left"
        )
        return (frame[BODY] == frame["_known"]).fill_null(False)

    def last_export_size(self) -> int:
        last = self.last_export()
        return 0 if last is None else int(last.select(pl.len()).collect().item())

    def last_export(self) -> pl.LazyFrame | None:
        if not self.usable:
            return None
        return pl.scan_parquet(self.location.snapshot).filter(pl.col(SEEN))


def _usable(location: StateLocation, fingerprint: str) -> bool:
    if not location.snapshot.exists():
        log.info("incremental: no snapshot yet for %s: every record is sent", location.key)
        return False
    meta = read_meta(location)
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
    to exactly the ids it saw.
    """
    sent = _succeeded(location, succeeded_rows)
    old = _old_snapshot(location, fingerprint)
    merged = pl.concat(
        [old.join(sent, on=ID, how="anti"), sent.with_columns(pl.lit(True).alias(SEEN))]
    )
    if export_complete:
        seen = _seen_ids(location.work).implode()
        merged = merged.with_columns(pl.col(ID).is_in(seen).alias(SEEN))
    size = _write_atomically(merged, location)
    _write_meta(location, fingerprint, size)
    shutil.rmtree(location.work, ignore_errors=True)
    return size


def _succeeded(location: StateLocation, rows: pl.Series) -> pl.LazyFrame:
    parts = sorted(location.work.glob("sent-*.parquet"))
    if not parts:
        return pl.LazyFrame(schema={ID: pl.String, BODY: pl.String})
    return (
        pl.scan_parquet(parts)
        .filter(pl.col("_row").is_in(rows.implode()))
        .unique(subset=[ID], keep="last", maintain_order=True)
        .select(ID, BODY)
    )


def _old_snapshot(location: StateLocation, fingerprint: str) -> pl.LazyFrame:
    # A snapshot taken under another mapping still says what the API holds: keep it.
    if location.snapshot.exists():
        return pl.scan_parquet(location.snapshot).select(ID, BODY, SEEN)
    return pl.LazyFrame(schema=_SCHEMA)


def _seen_ids(work: Path) -> pl.Series:
    parts = sorted(work.glob("seen-*.parquet"))
    if not parts:
        return pl.Series(ID, [], dtype=pl.String)
    return pl.scan_parquet(parts).select(ID).unique().collect()[ID]


def _write_atomically(frame: pl.LazyFrame, location: StateLocation) -> int:
    """Streamed to a temporary file, then renamed over the snapshot."""
    tmp = location.snapshot.with_suffix(".tmp")
    frame.sink_parquet(tmp)
    private_file(tmp).replace(location.snapshot)
    return int(pl.scan_parquet(location.snapshot).select(pl.len()).collect().item())


def _write_meta(location: StateLocation, fingerprint: str, size: int) -> None:
    meta = {
        "mapping": fingerprint,
        "records": size,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = location.meta.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    private_file(tmp).replace(location.meta)


def missing_since_last_run(snapshot: Snapshot, work: Path) -> pl.DataFrame:
    """Ids in the last export that this export lacks, with their last body (sorted by id)."""
    last = snapshot.last_export()
    if last is None:
        return pl.DataFrame(schema={ID: pl.String, BODY: pl.String})
    seen = _seen_ids(work)
    return last.filter(~pl.col(ID).is_in(seen.implode())).select(ID, BODY).sort(ID).collect()


def job_states(root: Path, job_name: str) -> list[StateLocation]:
    """Every state kept for a job (one per base URL and merchant id it ran against)."""
    if not root.is_dir():
        return []
    return [StateLocation(root, p.name) for p in sorted(root.glob(f"{job_name}-*")) if p.is_dir()]


def describe(location: StateLocation, fingerprint: str) -> dict[str, Any]:
    meta = read_meta(location)
    described: dict[str, Any] = {"state": location.key, "folder": str(location.folder)}
    if location.snapshot.exists():
        counts = (
            pl.scan_parquet(location.snapshot)
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
