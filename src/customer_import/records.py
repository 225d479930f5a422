"""Source batches -> what to send, what to reject, what to hold back as a repeated id.

Pure apart from the CPU: batches are prepared on worker threads (``parallel.OrderedMap``)
while the sender sends earlier ones, so reading and validating overlap with the network.
``prepare`` shares nothing between batches but the validator's verdict caches; what a run
adds up across batches is added by ``tally``, in file order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

import polars as pl

from customer_import.duplicates import HeldRecord, RepeatedIdFinder, id_hashes
from customer_import.fieldstats import FieldStats
from customer_import.mapping import MappingPlan, map_batch
from customer_import.normalise import EXCEL_NUMBER
from customer_import.parallel import OrderedMap
from customer_import.quality import SuspectText, find_double_encoded, merge_counts
from customer_import.schema import STRING_FIELDS
from customer_import.sender import SendItem
from customer_import.source import ROW, Batch, ParseFailure
from customer_import.state import RejectRow
from customer_import.validation import BODY, ID, Validated, Validator

#: Incremental sync: (ids, bodies) -> True where the API already holds exactly that body.
UnchangedMask = Callable[[pl.Series, pl.Series], pl.Series]


@dataclass(slots=True)
class PreparedBatch:
    records: int  # records in the batch, broken ones included
    ids: pl.Series  # every usable externalId read (incremental sync: what the export holds)
    sends: pl.DataFrame  # _row, externalId, _body of the records to send
    unchanged: list[tuple[int, str]] = field(default_factory=list)  # (row, externalId)
    rejects: list[RejectRow] = field(default_factory=list)
    held: list[HeldRecord] = field(default_factory=list)
    suspect: dict[str, SuspectText] = field(default_factory=dict)  # double-encoded values
    stats: FieldStats | None = None  # per-field counts, for `customer-import check`


def send_items(sends: pl.DataFrame) -> list[SendItem]:
    """What the sender takes from a frame of (record number, externalId, body text)."""
    row, external_id, body = sends.columns
    bodies = sends[body].cast(pl.Binary).to_list()  # UTF-8 bytes, encoded by Polars
    return list(map(SendItem, sends[row].to_list(), sends[external_id].to_list(), bodies))


def id_only(frame: pl.DataFrame, plan: MappingPlan) -> pl.Series:
    """The cleaned externalId of each record, null where it cannot be a real id."""
    ids = map_batch(frame, plan, only=(ID,))[ID]
    return ids.set(ids.str.contains(EXCEL_NUMBER.pattern).fill_null(False), None)


def id_columns(plan: MappingPlan) -> list[str]:
    """The source column(s) the pre-pass needs: the one feeding externalId."""
    id_field = plan.field(ID)
    return [id_field.column] if id_field and id_field.column else []


def scan_ids(
    batches: Iterable[Batch],
    plan: MappingPlan,
    finder: RepeatedIdFinder,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Pre-pass: counts the records and hands the hashes of their ids to ``finder``.

    Ids are hashed in a thread of their own while the next batch is read. Returns early,
    with a partial count, once ``stopping()`` says the run is being stopped.
    """
    total = 0
    with OrderedMap(partial(_hashed_ids, plan=plan), iter(batches), workers=1) as hashed:
        for hashes, records in hashed:
            if stopping():
                break
            finder.add(hashes)
            total += records
    return total


def _hashed_ids(batch: Batch, plan: MappingPlan) -> tuple[pl.Series, int]:
    return id_hashes(id_only(batch.frame, plan)), batch.records


class BatchPreparer:
    """Maps and validates batches, skipping records a resumed run already finished."""

    def __init__(
        self,
        plan: MappingPlan,
        kept_columns: list[str],
        repeated: pl.Series,
        done_rows: pl.Series,
        unchanged_mask: UnchangedMask | None = None,
        stats: FieldStats | None = None,
    ) -> None:
        self._unchanged_mask = unchanged_mask
        self._plan = plan
        self._text_fields = [t for t in plan.targets if t in STRING_FIELDS]
        self.suspect_text: dict[str, SuspectText] = {}  # double-encoded values, per field
        self.stats = stats
        self._validator = Validator(plan, tuple(stats.fields) if stats is not None else None)
        self._kept = kept_columns
        self._repeated = repeated
        self._done = done_rows

    def tally(self, prepared: PreparedBatch) -> None:
        """Adds a prepared batch's counts to the run's; called in file order, by one thread."""
        self.suspect_text = merge_counts(self.suspect_text, prepared.suspect)
        if self.stats is not None and prepared.stats is not None:
            self.stats.merge(prepared.stats)

    def prepare(self, batch: Batch) -> PreparedBatch:
        """Safe to call from several threads at once."""
        frame = batch.frame
        ids = id_only(frame, self._plan)
        held_mask = id_hashes(ids).is_in(self._repeated.implode()).fill_null(False)
        held_rows = frame[ROW].filter(held_mask)
        mapped = map_batch(frame, self._plan)
        found = find_double_encoded(mapped, self._text_fields)
        validated = self._validator.validate(mapped)
        sources = self._source_values(frame, validated.rejects[ROW], held_rows)
        is_new = ~pl.col(ROW).is_in(held_rows.implode()) & ~pl.col(ROW).is_in(self._done.implode())
        out = PreparedBatch(
            records=batch.records,
            ids=ids.drop_nulls(),
            sends=validated.valid.filter(is_new),
            suspect=found,
            stats=validated.stats,
        )
        out.rejects = [_parse_reject(f) for f in batch.failures if f.row not in self._done]
        out.held = self._held(validated, held_rows, sources)
        self._split_unchanged(out)
        out.rejects += [
            RejectRow(
                row=row, external_id=eid, stage="validation", reason=reason, source=sources[row]
            )
            for row, eid, reason in validated.rejects.filter(is_new).iter_rows()
        ]
        return out

    def _split_unchanged(self, out: PreparedBatch) -> None:
        if self._unchanged_mask is None or out.sends.is_empty():
            return
        mask = self._unchanged_mask(out.sends[ID], out.sends[BODY])
        out.unchanged = list(out.sends.filter(mask).select(ROW, ID).iter_rows())
        out.sends = out.sends.filter(~mask)

    def _source_values(
        self, frame: pl.DataFrame, reject_rows: pl.Series, held_rows: pl.Series
    ) -> dict[int, tuple[str, ...]]:
        """Original values of the records that may end in the rejects file."""
        wanted = frame.filter(
            pl.col(ROW).is_in(reject_rows.implode()) | pl.col(ROW).is_in(held_rows.implode())
        )
        return dict(zip(wanted[ROW].to_list(), wanted.select(self._kept).rows(), strict=True))

    def _held(
        self, validated: Validated, held_rows: pl.Series, sources: dict[int, tuple[str, ...]]
    ) -> list[HeldRecord]:
        is_held = pl.col(ROW).is_in(held_rows.implode())
        done = pl.col(ROW).is_in(self._done.implode()).alias("_done")
        valid = validated.valid.filter(is_held).with_columns(done)
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


def _parse_reject(failure: ParseFailure) -> RejectRow:
    return RejectRow(
        row=failure.row,
        external_id=None,
        stage="parse",
        reason=failure.reason,
        source=(),
        raw=failure.raw,
    )
