"""One incremental run's use of the state: diff while reading, deactivations of the customers
gone from the export, and the snapshot merged at the end (``snapshot.py`` keeps the state)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import polars as pl

from customer_import.config import BASE_URL_ENV, JobConfig, OnMissing, RunMode
from customer_import.contracts import (
    BODY,
    EXTERNAL_ID,
    ROW,
    SENT_OK,
    IncrementalFacts,
    PreparedBatch,
)
from customer_import.errors import ConfigError, MissingCustomersGuard
from customer_import.record.journal import Journal
from customer_import.record.locks import FolderLock
from customer_import.record.snapshot import (
    BODY as SNAPSHOT_BODY,
)
from customer_import.record.snapshot import (
    ID as SNAPSHOT_ID,
)
from customer_import.record.snapshot import (
    PartWriter,
    Snapshot,
    StateLocation,
    job_states,
    last_bodies,
    mapping_fingerprint,
    merge,
    missing_since_last_run,
    state_key,
)
from customer_import.transform.frames import sends_frame

log = logging.getLogger("customer_import")
MISSING_LISTED = 1_000
"""Ids listed in summary.json; missing.csv has them all."""


def deactivation_body(body: str) -> bytes:
    """The last body sent for a customer, with active = false (firstName is required)."""
    value = json.loads(body)
    value["active"] = False
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class IncrementalSync:
    """One run's use of the state: diff while reading, record what is sent, merge at the end.

    ``diff``: compare with the snapshot (False for --full, which still refreshes it).
    ``persist``: write the snapshot at the end (False for a dry run).
    """

    def __init__(
        self,
        location: StateLocation,
        fingerprint: str,
        *,
        diff: bool,
        persist: bool,
        work: Path,
        on_missing: OnMissing = "ignore",
        max_missing_ratio: float = 0.1,
    ) -> None:
        self.location, self.fingerprint, self.persist = location, fingerprint, persist
        self.snapshot = Snapshot(location, fingerprint) if diff else None
        self.work = work if not persist else location.work
        self.on_missing, self.max_missing_ratio = on_missing, max_missing_ratio
        self.warnings: list[str] = []
        self.missing_ids: list[str] = []
        """Customers of the last export that this one lacks (known once it is all read)."""
        self._parts = PartWriter(self.work)
        self._lock = (
            FolderLock(location.folder, "the incremental state", private=True) if persist else None
        )

    def __enter__(self) -> IncrementalSync:
        """The state is this run's until ``__exit__``: a second run of the job is refused."""
        if self._lock is not None:
            self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()

    def last_export_ids(self) -> pl.Series | None:
        """The ids of the last export (None when there is no usable snapshot to diff with)."""
        return self.snapshot.last_export_ids() if self.snapshot is not None else None

    def guard_missing(self, absent: int, *, allow: bool) -> None:
        """Many customers of the last export missing from this one: a truncated export, most
        likely. With on_missing = "deactivate" the run stops before sending anything (unless
        ``allow``); otherwise a warning."""
        known = self.snapshot.last_export_size() if self.snapshot is not None else 0
        if not known or absent / known <= self.max_missing_ratio:
            return
        found = (
            f"{absent} of the {known} customers of the last export ({absent / known:.0%}) are "
            f"missing from this one, more than max_missing_ratio = {self.max_missing_ratio:g}"
        )
        if self.on_missing == "deactivate" and not allow:
            raise MissingCustomersGuard(
                f"{found}: nothing was sent and nobody was deactivated. If the export is "
                "incomplete, fix it; if they really are gone, run again with --allow-missing "
                "(this run only) or raise max_missing_ratio"
            )
        log.warning("%s", found)
        self.warnings.append(found)

    def split_unchanged(self, sends: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """``sends`` (``ROW``, ``EXTERNAL_ID``, ``BODY``) less the records whose body the API
        already holds, and those records' ``ROW``, ``EXTERNAL_ID``."""
        if self.snapshot is None or sends.is_empty():
            return sends, sends.clear().select(ROW, EXTERNAL_ID)
        mask = self.snapshot.unchanged_mask(sends[EXTERNAL_ID], sends[BODY])
        return sends.filter(~mask), sends.filter(mask).select(ROW, EXTERNAL_ID)

    def recorded(self, batches: Iterable[PreparedBatch]) -> Iterator[PreparedBatch]:
        """The batches, each one's ids (what the export holds) and sends (what is about to be
        sent) written to the work folder first."""
        for batch in batches:
            self._parts.seen(batch.ids)
            self.record_sends(batch.sends)
            yield batch

    def record_sends(self, sends: pl.DataFrame) -> None:
        """``sends`` (``ROW``, ``EXTERNAL_ID``, ``BODY``): written before they are sent."""
        if not sends.is_empty():
            self._parts.sent(sends[ROW], sends[EXTERNAL_ID], sends[BODY])

    def deactivations(self, already_sent: pl.Series, *, send: bool) -> pl.DataFrame:
        """Customers gone from the export since the last run, once it is all read: listed in
        ``missing_ids``, and with ``on_missing = "deactivate"`` (and ``send``) the requests that
        set them ``active = false``, numbered -1, -2... (they are not input records), less those
        ``already_sent`` by an earlier attempt."""
        gone = self._missing()
        self.missing_ids = gone.to_list()
        if gone.is_empty() or self.on_missing != "deactivate" or not send:
            return sends_frame([], [], [])
        assert self.snapshot is not None  # something is missing from it
        missing = last_bodies(self.snapshot, gone)
        log.info(
            "%d customers of the last export are missing from this one: deactivating them "
            '(on_missing = "deactivate"; missing.csv lists them)',
            missing.height,
        )
        frame = sends_frame(
            range(-1, -missing.height - 1, -1),
            missing[SNAPSHOT_ID],
            [deactivation_body(b).decode() for b in missing[SNAPSHOT_BODY]],
        ).filter(~pl.col(ROW).is_in(already_sent.implode()))
        self.record_sends(frame)
        return frame

    def facts(self, deactivated: int) -> IncrementalFacts:
        """This sync's part of summary.json."""
        return IncrementalFacts(
            compared_with_snapshot=self.snapshot is not None and self.snapshot.usable,
            state=self.location.key,
            on_missing=self.on_missing,
            missing_since_last_run=len(self.missing_ids),
            missing_ids=self.missing_ids[:MISSING_LISTED],
            deactivated=deactivated,
        )

    def _missing(self) -> pl.Series:
        if self.snapshot is None:
            return pl.Series(SNAPSHOT_ID, [], dtype=pl.String)
        return missing_since_last_run(self.snapshot, self.work)

    def finish(self, journal: Journal, *, completed: bool) -> None:
        """The snapshot merged with the bodies whose upsert the journal records as done."""
        if self.persist:
            succeeded = pl.Series(ROW, journal.rows_with_status(SENT_OK), dtype=pl.Int64)
            size = merge(self.location, self.fingerprint, succeeded, export_complete=completed)
            log.info("incremental: snapshot %s now holds %d customers", self.location.key, size)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def incremental_sync(
    job: JobConfig,
    base_url: str,
    environ: Mapping[str, str],
    mode: RunMode,
    dry_run_in: Path | None,
) -> IncrementalSync | None:
    """State for an incremental job; --full (diff False) still refreshes it. A dry run
    (``dry_run_in``: the folder of its scratch files) compares but never writes the state."""
    if "incremental" not in (job.mode, mode):
        return None
    merchant_id = environ.get(job.api.merchant_id_env, "").strip()
    if not merchant_id:  # a dry run without credentials: no state to compare with
        log.info(
            "incremental: %s is not set: every record counts as changed", job.api.merchant_id_env
        )
        return None
    assert job.output.state_dir is not None  # load_job always resolves it
    location = StateLocation(job.output.state_dir, state_key(job.name, base_url, merchant_id))
    return IncrementalSync(
        location,
        mapping_fingerprint(job),
        diff=mode == "incremental",
        persist=dry_run_in is None,
        work=location.work if dry_run_in is None else dry_run_in / ".incremental-dry-run",
        on_missing=job.on_missing,
        max_missing_ratio=job.max_missing_ratio,
    )


def state_locations(
    job: JobConfig, base_url: str | None, *, everything: bool
) -> list[StateLocation]:
    """The incremental state(s) of a job: this API and merchant's, or all of them."""
    assert job.output.state_dir is not None
    if everything:
        return job_states(job.output.state_dir, job.name)
    url = (base_url or os.environ.get(BASE_URL_ENV) or job.api.base_url).rstrip("/")
    merchant_id = os.environ.get(job.api.merchant_id_env, "").strip()
    if not merchant_id:
        raise ConfigError(
            f"set {job.api.merchant_id_env} to name the merchant whose state this is, "
            "or pass --all for every state of the job"
        )
    location = StateLocation(job.output.state_dir, state_key(job.name, url, merchant_id))
    return [location] if location.folder.is_dir() else []
