"""Stage contracts: what each stage of a run hands the next, and the names they share.

    source ──Batch──▶ transform ──PreparedBatch──▶ send ──SendOutcome──▶ record ──▶ outputs
                       (HeldRecord: repeated ids,    (a SendItem     (ResultRow /    (RunSummary,
                        decided once all is read)     a request)      RejectRow)      RunReport)

The bottom of the import graph: it imports nothing of the package, so every stage can take
its types from here and none needs another stage's module for them. A frame that crosses a
stage boundary names its columns by the constants below, never by position.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    import polars as pl

# Columns of the frames stages hand each other. The record number (Int64, 1-based) has a name
# no export uses (a source column called so is renamed); the reason holds one "field: reason"
# per field, joined by "; ". The id, body and reason are String.
ROW: Final = "__row__"
EXTERNAL_ID: Final = "externalId"
BODY: Final = "_body"
REASON: Final = "_reason"

# The rejects file: the columns it adds after the source's own mark it when read back.
REJECTS_TRAILER: Final = ("_row", "_stage", "_reason", "_raw")
PEOPLE: Final = ("firstName", "lastName", "email")  # beside each outcome in results, as sent
#: An output cell starting so (after any apostrophes) gets a leading one, never to run as a
#: spreadsheet formula; reading the tool's own rejects back removes it.
FORMULA_CHARS: Final = "=+-@\t\r"


class RecordStatus(StrEnum):
    """What became of one input record (results.csv ``status``; rejects are ``rejected``)."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DUPLICATE = "duplicate"
    VALID = "valid"
    REJECTED = "rejected"


#: Statuses of records the API now holds as sent.
SENT_OK: Final = (RecordStatus.CREATED, RecordStatus.UPDATED)


class RejectStage(StrEnum):
    """Where a record was rejected (rejects.csv ``_stage``)."""

    PARSE = "parse"
    VALIDATION = "validation"
    DUPLICATE = "duplicate"
    API = "api"
    TRANSPORT = "transport"


class RunStatus(StrEnum):
    """How a run ended (summary.json ``status``)."""

    COMPLETED = "completed"
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"
    ABANDONED = "abandoned"
    """Unfinished, then closed by a later run instead of resumed (only in history/)."""


class ExitCode(IntEnum):
    """The command's exit codes: the one table (the README's is tested against it)."""

    OK = 0
    REJECTS = 1
    NOTHING_DONE = 2
    STOPPED = 3
    SOFTWARE = 70
    SIGINT = 130
    SIGTERM = 143

    @property
    def meaning(self) -> str:
        return _EXIT_MEANINGS[self]


_EXIT_MEANINGS: Final = {
    ExitCode.OK: "completed; every record accepted",
    ExitCode.REJECTS: "completed with rejects (see rejects.csv)",
    ExitCode.NOTHING_DONE: "nothing was done: a configuration, input or setup error",
    ExitCode.STOPPED: "stopped part-way (API refused the key, outage, guard): resumable",
    ExitCode.SOFTWARE: "an unexpected error (a bug): the traceback is in the log",
    ExitCode.SIGINT: "interrupted by Ctrl-C (SIGINT): resumable",
    ExitCode.SIGTERM: "stopped by SIGTERM: resumable",
}


# source -> transform
@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A record that could not be split into the header's columns."""

    row: int
    """The record number this broken record would have had (1-based)."""
    raw: str
    """Its original text: one line, no line break ("" if the file has a dropped column)."""
    reason: str
    """Why, e.g. "line has 7 fields, the header has 5"."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Records numbered in one range of ``batch_size`` numbers."""

    frame: pl.DataFrame
    """``ROW`` (Int64) first, then one String column per selected column, in file order."""
    failures: list[ParseFailure]
    """Broken records whose numbers fall in this batch's range."""

    @property
    def records(self) -> int:
        """Records in the batch, broken ones included."""
        return self.frame.height + len(self.failures)


# transform -> send, record
class ResultRow(NamedTuple):
    """One record's result (results.csv), in the order of the journal's columns."""

    row: int
    external_id: str | None
    status: RecordStatus
    http_status: int | None = None
    attempts: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RejectRow:
    """One record's reject (rejects.csv)."""

    row: int
    external_id: str | None
    stage: RejectStage
    reason: str
    source: Sequence[str] | None
    """The record's source values; None when not known yet (API and transport rejects: filled
    in from the file at the end of the run)."""
    raw: str | None = None
    http_status: int | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class HeldRecord:
    """A record whose id occurs more than once: held back until the whole file is read.
    ``done``: a resumed run already has its outcome."""

    row: int
    external_id: str
    body: bytes | None = None
    reason: str | None = None
    source: tuple[str, ...] = ()
    done: bool = False


class Omission(NamedTuple):
    """A field left out of a record's request body because its value was invalid."""

    row: int
    field: str
    reason: str
    """Why the value was invalid, e.g. "'1234' is not a valid phone number"."""


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """One source batch, mapped and validated: what to send, and every other record's fate."""

    records: int
    """Records in the source batch, broken ones included."""
    ids: pl.Series
    """Every usable externalId read (an incremental sync's "what the export holds")."""
    sends: pl.DataFrame  # ROW, EXTERNAL_ID, BODY of the records to send
    people: pl.DataFrame  # ROW and PEOPLE of the batch's valid records (results' names)
    unchanged: pl.DataFrame
    """ROW, EXTERNAL_ID of valid records the API already holds as they are (incremental)."""
    rejects: list[RejectRow] = field(default_factory=list)
    held: list[HeldRecord] = field(default_factory=list)
    omitted: list[Omission] = field(default_factory=list)
    """Invalid values left out of valid records (``on_invalid = "omit"``), held ones' too."""


# run -> send
class SendLimits(NamedTuple):
    """Where to send, and how hard: this shard's share of the job's limits."""

    base_url: str
    concurrency: int
    """Most requests in flight at once."""
    rate_limit: float | None
    """Most requests a second (None: as fast as the API answers without 429)."""


# send -> record
class SendItem(NamedTuple):
    """One request to make. Items and outcomes are named tuples: one of each a request, and a
    tuple is built in a fraction of a frozen dataclass's time."""

    row: int
    external_id: str
    body: bytes


class SendOutcome(NamedTuple):
    """What happened to one item: ``status`` created/updated, or None when rejected."""

    item: SendItem
    status: RecordStatus | None
    http_status: int | None
    attempts: int
    created_at: str | None = None
    updated_at: str | None = None
    stage: RejectStage | None = None
    """API or TRANSPORT when rejected."""
    reason: str | None = None


# run -> the caller
@dataclass(frozen=True, slots=True)
class Progress:
    """What a run has done so far, handed to a progress callback."""

    total: int
    done: int
    counts: Mapping[RecordStatus, int]
    requests: int


@dataclass(frozen=True, slots=True)
class Ending:
    """How a run ended: its status, what a person should read, the signal that stopped it."""

    status: RunStatus
    message: str | None = None
    signum: int | None = None
    resumable: bool = True
    """False when a guard stopped the run before anything was sent: nothing to resume."""


@dataclass(frozen=True, slots=True)
class Latency:
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@dataclass(frozen=True, slots=True)
class SendFacts:
    """What a run's requests did: the send stage's part of the summary."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    max_in_flight: int = 0
    latency: Latency = field(default_factory=Latency)
    latency_buckets: dict[int, int] = field(default_factory=dict)
    """The latency histogram's counts by bucket: a resume adds its own to them."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """What an attempt of a run did (a resume is an attempt of its own), or all of them."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    """429 answers."""
    max_in_flight: int = 0
    duration_s: float = 0.0
    records: int = 0
    """Input records given an outcome."""
    rows_per_s: float | None = None
    """``records`` a second."""
    latency_ms: Latency = field(default_factory=Latency)
    started_at: str | None = None
    finished_at: str | None = None


@dataclass(frozen=True, slots=True)
class InputFacts:
    path: str
    size: int
    hash: str


@dataclass(frozen=True, slots=True)
class IncrementalFacts:
    """An incremental sync's part of the summary."""

    compared_with_snapshot: bool
    state: str
    on_missing: str
    missing_since_last_run: int
    missing_ids: list[str]
    """The first ``MISSING_LISTED`` of them; missing.csv has them all."""
    deactivated: int


@dataclass(frozen=True, slots=True)
class ShardStatus:
    """How one shard of a merged run ended."""

    shard: str | None
    status: RunStatus
    message: str | None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did, in numbers: summary.json. Counts describe the whole input, and the
    request figures and timings every attempt, earlier ones included (a resume);
    ``this_attempt`` holds this attempt's alone."""

    status: RunStatus
    message: str | None
    job: str | None
    dry_run: bool
    rows: int
    counts: Mapping[RecordStatus, int]
    pending: int
    rejected_by_stage: Mapping[str, int]
    requests: int
    retries: int
    rate_limited: int
    max_in_flight: int
    """The most requests in flight at once, in any attempt."""
    duration_s: float
    """The attempts' durations added up."""
    rows_per_s: float | None
    latency_ms: Latency
    input: InputFacts | None
    encoding: str | None
    delimiter: str | None
    base_url: str | None = None
    out_dir: str | None = None
    finished_at: str | None = None
    started_at: str | None = None
    """When the run's first attempt started."""
    attempts: int = 1
    this_attempt: Attempt = field(default_factory=Attempt)
    shard: str | None = None
    warnings: list[str] = field(default_factory=list)
    incremental: IncrementalFacts | None = None
    shards: list[ShardStatus] | None = None
    """A merged run's shards."""
    omitted: Mapping[str, int] = field(default_factory=dict)
    """Per field, the records imported (or valid) without it because its value was invalid."""
    run_id: str | None = None
    """The run's id: its folder in ``history/``."""
    refeed_of: str | None = None
    """A fed back rejects file: the id of the run that wrote it, when known."""

    def count(self, status: RecordStatus) -> int:
        return self.counts.get(status, 0)

    @property
    def rejected(self) -> int:
        return self.count(RecordStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class RunReport:
    """What ``run_job`` returns: how the run ended, its summary, and where its files are."""

    status: RunStatus
    summary: RunSummary
    out_dir: Path
    message: str | None = None
    signum: int | None = None
    resumable: bool = True
    """``Ending.resumable``: whether records left pending are for ``--resume`` to send."""

    @property
    def rejected(self) -> int:
        return self.summary.rejected

    @property
    def exit_code(self) -> ExitCode:
        if self.status is RunStatus.INTERRUPTED:
            return ExitCode.SIGTERM if self.signum == signal.SIGTERM else ExitCode.SIGINT
        if self.status is not RunStatus.COMPLETED:
            return ExitCode.STOPPED
        return ExitCode.REJECTS if self.rejected else ExitCode.OK
