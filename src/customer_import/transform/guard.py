"""Stop before sending when the export as a whole looks wrong: empty, or its first records
mostly invalid (a wrong file or mapping)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from typing import Final

from customer_import.config import OMITTABLE_FIELDS
from customer_import.contracts import PreparedBatch
from customer_import.errors import EmptyExportGuard, InvalidInputGuard

SAMPLE: Final = 1000
_QUOTED = re.compile(r"'[^']*'")
_FIELD_REASONS = re.compile(r"; (?=[A-Za-z.]+: )")  # "email: ...; phoneNumber: ..." per field


class InvalidRatioGuard:
    def __init__(self, max_ratio: float, *, enabled: bool) -> None:
        self._max_ratio = max_ratio
        self._enabled = enabled

    async def checked(self, batches: AsyncIterator[PreparedBatch]) -> AsyncIterator[PreparedBatch]:
        """Pass batches through; the first ones are held until SAMPLE records are judged."""
        held: list[PreparedBatch] = []
        async for batch in batches:
            if not self._enabled:
                yield batch
                continue
            held.append(batch)
            if sum(b.records for b in held) >= SAMPLE:
                self._check(held)
                self._enabled = False
                for ready in held:
                    yield ready
                held = []
        if held:
            self._check(held)
        for ready in held:
            yield ready

    def _check(self, batches: list[PreparedBatch]) -> None:
        judged = min(SAMPLE, sum(b.records for b in batches))
        reasons = [r.reason for b in batches for r in b.rejects if r.row <= SAMPLE]
        if judged and len(reasons) / judged > self._max_ratio:
            raise InvalidInputGuard(_message(len(reasons), judged, self._max_ratio, reasons))


def _message(rejected: int, judged: int, max_ratio: float, reasons: list[str]) -> str:
    """What went wrong, and the fixes that work: nothing was sent, so there is nothing to
    resume; the next run starts afresh."""
    parts = (part for r in reasons for part in _FIELD_REASONS.split(r))
    common = Counter(_reason_kind(part) for part in parts).most_common(3)
    listed = "; ".join(f"{kind} ({count}x)" for kind, count in common)
    return (
        f"{rejected} of the first {judged} records are invalid (more than max_invalid_ratio = "
        f"{max_ratio:g}): this looks like a wrong file or a wrong mapping, so nothing was sent. "
        f"Most common reasons: {listed}. To see every reason, run the job with --dry-run (it "
        f"sends nothing and writes rejects.csv); fix the mapping or the file and run it again"
        f"{_omit_hint(kind for kind, _ in common)}; or raise max_invalid_ratio in the job file if "
        "the data really is this bad."
    )


def _omit_hint(kinds: Iterable[str]) -> str:
    """The optional fields among the reasons: ``on_invalid = "omit"`` imports the customers
    without their invalid values."""
    fields = sorted({kind.split(": ", 1)[0] for kind in kinds} & set(OMITTABLE_FIELDS))
    if not fields:
        return ""
    named = " and ".join(fields)
    return (
        f'; or import these customers without their invalid {named}: on_invalid = "omit" in '
        f"the mapping of {named}"
    )


def _reason_kind(reason: str) -> str:
    """'email: 'x@' is not valid (...)' -> 'email: … is not valid': values left out."""
    return _QUOTED.sub("…", reason.split(" (", 1)[0])


def guard_empty(records: int, allow_empty: bool) -> None:
    """An export with no record is a failed export until the job says it can happen."""
    if records == 0 and not allow_empty:
        raise EmptyExportGuard(
            "the export holds no record (a header line at most): nothing was sent. An empty "
            "export usually means the export that wrote it failed; set allow_empty = true in "
            "the job file if an empty file is expected"
        )
