"""Pure: repeated externalIds, decided before anything is sent.

A pre-pass hashes every id (8 bytes a record, so memory stays small) and keeps the hashes
seen more than once. During the main pass the records carrying such a hash are held back;
once the whole file is read they are grouped by their exact id (a hash collision can
therefore never merge two customers) and one record per id is chosen:

- ``last`` (default) / ``first``: the chosen record is sent, or rejected if it is invalid
  (an older record is never sent in its place); the others are results with status
  ``duplicate``.
- ``reject``: every record of the id is rejected with stage ``duplicate``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl


def id_hashes(ids: pl.Series) -> pl.Series:
    """Null for a null id. Stable within one process, which is all the two passes need."""
    return ids.hash(seed=0x5EED).set(ids.is_null(), None)


def repeated_hashes(batches: Iterable[pl.Series]) -> pl.Series:
    """The hashes that occur more than once across all batches (nulls ignored)."""
    hashes = pl.concat([b.drop_nulls() for b in batches] or [pl.Series([], dtype=pl.UInt64)])
    return hashes.filter(hashes.is_duplicated()).unique()


@dataclass(frozen=True, slots=True)
class HeldRecord:
    """A record whose id occurs more than once; ``done``: a resumed run has its outcome."""

    row: int
    external_id: str
    body: bytes | None = None
    reason: str | None = None
    source: tuple[str, ...] = ()
    done: bool = False


@dataclass(slots=True)
class Decision:
    send: list[HeldRecord] = field(default_factory=list)
    reject: list[tuple[HeldRecord, str, str]] = field(default_factory=list)  # record, stage, reason
    duplicate: list[tuple[HeldRecord, int]] = field(default_factory=list)  # record, chosen row


def decide(held: Iterable[HeldRecord], mode: str) -> Decision:
    """One decision per exact id; records already done are only used to find the chosen row."""
    groups: dict[str, list[HeldRecord]] = defaultdict(list)
    for record in held:
        groups[record.external_id].append(record)
    decision = Decision()
    for records in groups.values():
        _decide_group(sorted(records, key=lambda r: r.row), mode, decision)
    return decision


def _decide_group(records: list[HeldRecord], mode: str, decision: Decision) -> None:
    if len(records) == 1:  # a hash collision, or the only one left: an ordinary record
        _send_or_reject(records[0], decision)
        return
    if mode == "reject":
        rows = ", ".join(str(r.row) for r in records)
        reason = (
            f"externalId {records[0].external_id!r} appears in records {rows}"
            ' (duplicates = "reject")'
        )
        decision.reject += [(r, "duplicate", reason) for r in records if not r.done]
        return
    chosen = records[-1] if mode == "last" else records[0]
    for record in records:
        if record.done:
            continue
        if record is chosen:
            _send_or_reject(record, decision)
        else:
            decision.duplicate.append((record, chosen.row))


def _send_or_reject(record: HeldRecord, decision: Decision) -> None:
    if record.done:
        return
    if record.body is not None:
        decision.send.append(record)
    else:
        decision.reject.append((record, "validation", record.reason or "invalid"))
