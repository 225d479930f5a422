"""Source batches -> what to send, what to reject, what to hold back as a repeated id.

Pure apart from the CPU: batches are prepared on worker threads (``threads.OrderedMap``)
while the sender sends earlier ones, so reading and validating overlap with the network.
``prepare`` shares nothing between batches but the validator's verdict caches; what a run
adds up across batches is added by ``tally``, in file order.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Final, NamedTuple

import polars as pl

from customer_import.contracts import (
    BODY,
    EXTERNAL_ID,
    PEOPLE,
    REASON,
    ROW,
    Batch,
    HeldRecord,
    Omission,
    ParseFailure,
    PreparedBatch,
    RejectRow,
    RejectStage,
)
from customer_import.schema import STRING_FIELDS
from customer_import.source.table import rebatched
from customer_import.threads import OrderedMap, close_items
from customer_import.transform.duplicates import Decision, RepeatedIdFinder, id_hashes
from customer_import.transform.fieldstats import FieldStats
from customer_import.transform.mapping import MappingPlan, id_only, map_batch
from customer_import.transform.quality import (
    SuspectText,
    double_encoding_warning,
    find_double_encoded,
    merge_counts,
)
from customer_import.transform.sharding import Shard
from customer_import.transform.validation import FIELD, Validated, Validator

log = logging.getLogger("customer_import")

#: The first batch is this small so that sending starts in a fraction of a second; the next
#: batches, [source] batch_size each, are prepared while it is being sent.
FIRST_BATCH: Final = 1_000

#: Records the pre-pass hashes at a time: one column of them is small, and each batch has a
#: fixed cost (a fifth of the pre-pass with 25,000).
PRE_PASS_BATCH: Final = 100_000

#: Incremental sync: records to send -> those the API does not hold as they are, and the
#: (row, externalId) of those it does.
UnchangedSplit = Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]


class BatchQuality(NamedTuple):
    """What a batch adds to the run's data-quality tallies (folded in file order by ``tally``)."""

    suspect: dict[str, SuspectText]
    """Double-encoded values, per field."""
    stats: FieldStats | None
    """Per-field counts, for ``customer-import check``."""


class Prepared(NamedTuple):
    batch: PreparedBatch
    quality: BatchQuality


def id_columns(plan: MappingPlan) -> list[str]:
    """The source column(s) the pre-pass needs: those feeding externalId."""
    id_field = plan.field(EXTERNAL_ID)
    return list(id_field.columns) if id_field else []


class PrePass(NamedTuple):
    """What one read of the id column tells before anything is sent."""

    records: int
    """This shard's records (every record without a shard), broken ones included."""
    file_records: int
    """The whole file's records."""
    repeated: pl.Series
    """Hashes of the ids that occur more than once."""
    absent: int
    """Of the ``known`` ids asked about, how many the export lacks."""


def pre_pass(
    batches: Iterable[Batch],
    plan: MappingPlan,
    spill_in: Path,
    *,
    shard: Shard | None = None,
    known: pl.Series | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> PrePass:
    """Counts the records, finds the repeated ids and how many of ``known`` (ids from the last
    export) are absent. Hashes spill into a temporary folder in ``spill_in`` beyond about a
    million records; ids are hashed in a thread of their own while the next batch is read.
    Returns early, with partial counts, once ``stopping()`` says the run is being stopped."""
    records = file_records = 0
    with tempfile.TemporaryDirectory(dir=spill_in, prefix=".ids-") as spill:
        finder = RepeatedIdFinder(Path(spill))
        hashing = partial(_hashed_ids, plan=plan, shard=shard)
        ids = rebatched(_until(stopping, batches), PRE_PASS_BATCH, PRE_PASS_BATCH)
        with OrderedMap(hashing, ids, workers=1) as hashed:
            for hashes, mine, read in hashed:
                finder.add(hashes)
                records, file_records = records + mine, file_records + read
        absent = finder.count_absent(id_hashes(known)) if known is not None else 0
        return PrePass(records, file_records, finder.repeated(), absent)


def _until(stopping: Callable[[], bool], batches: Iterable[Batch]) -> Iterator[Batch]:
    """The batches, up to the one read once ``stopping()`` says the run is being stopped;
    then their reader is closed (its file too)."""
    try:
        for batch in batches:
            if stopping():
                return
            yield batch
    finally:
        close_items(batches)


def _hashed_ids(batch: Batch, plan: MappingPlan, shard: Shard | None) -> tuple[pl.Series, int, int]:
    """The hashes of this shard's ids, its records, and the batch's records."""
    ids = id_only(batch.frame, plan)
    if shard is None:
        return id_hashes(ids), batch.records, batch.records
    mine = shard.owns(ids, batch.frame[ROW])
    failures = sum(shard.owns_row(f.row) for f in batch.failures)
    return id_hashes(ids.filter(mine)), int(mine.sum()) + failures, batch.records


class BatchPreparer:
    """Maps and validates batches, skipping records a resumed run already finished."""

    def __init__(
        self,
        plan: MappingPlan,
        kept_columns: list[str],
        repeated: pl.Series,
        done_rows: pl.Series,
        split_unchanged: UnchangedSplit | None = None,
        stats: FieldStats | None = None,
    ) -> None:
        self._split_unchanged = split_unchanged
        self._plan = plan
        self._text_fields = [t for t in plan.targets if t in STRING_FIELDS]
        self.suspect_text: dict[str, SuspectText] = {}  # double-encoded values, per field
        self.stats = stats
        self._validator = Validator(plan, tuple(stats.fields) if stats is not None else None)
        self._kept = kept_columns
        self._repeated = repeated
        self._done = done_rows

    def tallied(self, prepared: Iterable[Prepared]) -> Iterator[PreparedBatch]:
        """The batches, each one's counts added to the run's in file order (by the one thread
        that hands them on)."""
        for batch, quality in prepared:
            self.suspect_text = merge_counts(self.suspect_text, quality.suspect)
            if self.stats is not None and quality.stats is not None:
                self.stats.merge(quality.stats)
            yield batch

    def warnings(self) -> list[str]:
        """Data problems that reject nothing but that a person should hear about (logged; the
        plan's were logged when the mapping was planned)."""
        found = [double_encoding_warning(s) for s in self.suspect_text.values() if s.frequent]
        for warning in found:
            log.warning("%s", warning)
        return [*self._plan.warnings, *found]

    def decided(self, decision: Decision) -> None:
        """Repeated ids are decided: the per-field counts take the records that were not
        superseded (``customer-import check``)."""
        if self.stats is not None:
            self.stats.settle({record.row for record, _ in decision.duplicate})

    def prepare(self, batch: Batch) -> Prepared:
        """Safe to call from several threads at once."""
        frame = batch.frame
        mapped = map_batch(frame, self._plan)
        validated = self._validator.validate(mapped)
        ids = validated.ids
        held_rows = self._held_rows(frame[ROW], ids)
        sources = self._source_values(frame, validated.rejects[ROW], held_rows)
        is_done = self._is_done()
        is_new = ~pl.col(ROW).is_in(held_rows.implode()) & ~is_done
        checked = validated.valid.select(ROW, EXTERNAL_ID, BODY).filter(is_new)
        sends, unchanged = checked, checked.clear().select(ROW, EXTERNAL_ID)
        if self._split_unchanged is not None:
            sends, unchanged = self._split_unchanged(checked)
        rejects = [_parse_reject(f) for f in self._not_done(batch.failures)]
        rejects += [
            RejectRow(row, eid, RejectStage.VALIDATION, reason, sources[row])
            for row, eid, reason in validated.rejects.filter(is_new).iter_rows()
        ]
        omitted = validated.omitted.filter(~is_done)
        prepared = PreparedBatch(
            records=batch.records,
            ids=ids.drop_nulls(),
            sends=sends,
            people=validated.valid.select(ROW, *PEOPLE).filter(~is_done),
            unchanged=unchanged,
            rejects=rejects,
            held=self._held(validated, held_rows, sources),
            omitted=list(map(Omission._make, omitted.select(ROW, FIELD, REASON).iter_rows())),
        )
        found = find_double_encoded(mapped, self._text_fields)
        return Prepared(prepared, BatchQuality(found, _counted_apart(validated, held_rows)))

    def _held_rows(self, rows: pl.Series, ids: pl.Series) -> pl.Series:
        """The records whose id occurs more than once in the export (none to hash for when no
        id does)."""
        if self._repeated.is_empty():
            return rows.clear()
        return rows.filter(id_hashes(ids).is_in(self._repeated.implode()).fill_null(False))

    def _not_done(self, failures: list[ParseFailure]) -> list[ParseFailure]:
        if not failures or self._done.is_empty():
            return failures
        done = pl.Series([f.row for f in failures]).is_in(self._done.implode()).to_list()
        return [f for f, is_done in zip(failures, done, strict=True) if not is_done]

    def _is_done(self) -> pl.Expr:
        """True for the records a resumed run already finished."""
        if self._done.is_empty():
            return pl.lit(False)
        return pl.col(ROW).is_in(self._done.implode())

    def _source_values(
        self, frame: pl.DataFrame, reject_rows: pl.Series, held_rows: pl.Series
    ) -> dict[int, tuple[str, ...]]:
        """Original values of the records that may end in the rejects file."""
        if reject_rows.is_empty() and held_rows.is_empty():
            return {}
        wanted = frame.filter(
            pl.col(ROW).is_in(reject_rows.implode()) | pl.col(ROW).is_in(held_rows.implode())
        )
        return dict(zip(wanted[ROW].to_list(), wanted.select(self._kept).rows(), strict=True))

    def _held(
        self, validated: Validated, held_rows: pl.Series, sources: dict[int, tuple[str, ...]]
    ) -> list[HeldRecord]:
        if held_rows.is_empty():
            return []
        is_held = pl.col(ROW).is_in(held_rows.implode())
        done = self._is_done().alias("_done")
        valid = validated.valid.select(ROW, EXTERNAL_ID, BODY).filter(is_held).with_columns(done)
        rejects = validated.rejects.filter(is_held).with_columns(done)
        held = [
            HeldRecord(row, eid, body=body.encode(), source=sources[row], done=is_done)
            for row, eid, body, is_done in valid.iter_rows()
        ]
        held += [
            HeldRecord(row, eid, reason=reason, source=sources[row], done=is_done)
            for row, eid, reason, is_done in rejects.iter_rows()
        ]
        return held


def _counted_apart(validated: Validated, held_rows: pl.Series) -> FieldStats | None:
    """The batch's per-field counts, the records of repeated ids held apart until decided."""
    if validated.stats is None or validated.checked is None or held_rows.is_empty():
        return validated.stats
    is_held = pl.col(ROW).is_in(held_rows.implode())
    stats = FieldStats(tuple(validated.stats.fields))
    stats.add(validated.checked.filter(~is_held))
    stats.hold(validated.checked.filter(is_held))
    return stats


def _parse_reject(failure: ParseFailure) -> RejectRow:
    return RejectRow(failure.row, None, RejectStage.PARSE, failure.reason, (), raw=failure.raw)
