"""Every record's outcome, as the run learns it: into the journal, committed in groups
(``commits.py``), and counted for progress."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from customer_import.contracts import (
    PreparedBatch,
    Progress,
    RecordStatus,
    RejectRow,
    RejectStage,
    ResultRow,
    SendOutcome,
)
from customer_import.record.commits import GroupCommit
from customer_import.record.journal import Journal
from customer_import.send.front_door import FIRST_ANSWERS
from customer_import.transform.duplicates import Decision

#: Outcomes committed together when no group size is given. A run gives its concurrency: a
#: crash then loses about as many outcomes as there are requests in flight. A dry run's valid
#: records come a batch at a time, and so are committed a batch at a time.
GROUP: Final = 10_000


@dataclass(slots=True)
class Counters:
    """Input records with an outcome, by status, earlier attempts' included: ``done`` is always
    the sum of ``by_status`` (what a progress display shows side by side)."""

    done: int = 0
    by_status: dict[RecordStatus, int] = field(default_factory=dict)

    def add(self, status: RecordStatus, count: int = 1) -> None:
        if not count:  # a batch with none of them: no status shown at 0
            return
        self.done += count
        self.by_status[status] = self.by_status.get(status, 0) + count


class Recorder:
    """Outcomes into the journal, counted by status, and those of this attempt on their own."""

    def __init__(self, journal: Journal, group: int = GROUP) -> None:
        self.journal = journal
        self.commits = GroupCommit(journal, group)
        """Enter it while outcomes arrive: they are committed in groups of ``group``."""
        self.counters = Counters()
        self.this_run = 0  # input records this attempt gave an outcome: not earlier attempts'
        self._transport_rejects = 0  # of this attempt, input records'
        self._first_api_rejects: list[int] = []  # this attempt's first, should a proxy be behind
        # the answers a front door is judged on, and those of the requests then in flight
        self._watched = FIRST_ANSWERS + group

    def resumed(self, by_status: Mapping[str, int]) -> None:
        """The outcomes earlier attempts gave (a resume), counted for progress."""
        for status, count in by_status.items():
            self.counters.add(RecordStatus(status), count)

    def forget_transport_rejects(self) -> int:
        """Every transport reject back to pending, earlier attempts' too (an outage began):
        returns how many. This attempt's then no longer count among its outcomes."""
        self.this_run -= self._transport_rejects
        self._transport_rejects = 0
        forgotten = self.journal.forget_rejects(RejectStage.TRANSPORT)
        self.counters.add(RecordStatus.REJECTED, -forgotten)
        return forgotten

    def forget_first_api_rejects(self) -> int:
        """This attempt's first API rejects back to pending (they were answered by something in
        front of the API, not the API): returns how many."""
        rows, self._first_api_rejects = self._first_api_rejects, []
        forgotten = self.journal.forget_rows(rows, RejectStage.API)
        self.this_run -= forgotten
        self.counters.add(RecordStatus.REJECTED, -forgotten)
        return forgotten

    def result(self, row: ResultRow) -> None:
        self.journal.add_result(row)
        self._counted(row.status, this_run=row.row > 0)

    def reject(self, row: RejectRow) -> None:
        self.journal.add_reject(row)
        if row.row > 0 and row.stage is RejectStage.TRANSPORT:
            self._transport_rejects += 1
        elif row.stage is RejectStage.API and len(self._first_api_rejects) < self._watched:
            self._first_api_rejects.append(row.row)
        self._counted(RecordStatus.REJECTED, this_run=row.row > 0)

    def prepared(self, batch: PreparedBatch) -> None:
        """A prepared batch's outcomes known before sending: rejects and unchanged records,
        the values left out of the records to send, and their names and emails."""
        for reject in batch.rejects:
            self.journal.add_reject(reject)
        self._counted(RecordStatus.REJECTED, len(batch.rejects), unsent=True)
        self.unchanged(batch.unchanged)
        self.journal.add_omitted(batch.omitted)
        self.journal.add_people(batch.people)

    def unchanged(self, records: pl.DataFrame) -> None:
        """Incremental sync: ROW, EXTERNAL_ID of records the API already holds as they are."""
        added = self.journal.add_unsent(RecordStatus.UNCHANGED, records)
        self._counted(RecordStatus.UNCHANGED, added, unsent=True)

    def decided(self, decision: Decision) -> None:
        """Repeated ids, decided: the superseded records and the rejected ones, made durable
        before any chosen record is sent (a resume relies on it)."""
        for result in decision.results():
            self.result(result)
        for reject in decision.rejects():
            self.reject(reject)
        self.journal.flush()

    def progress(self, total: int, requests: int) -> Progress:
        """The run's progress, given its record count and the requests made."""
        return Progress(total, self.counters.done, dict(self.counters.by_status), requests)

    def valid(self, records: pl.DataFrame) -> None:
        """A dry run's valid records: ROW, EXTERNAL_ID."""
        added = self.journal.add_unsent(RecordStatus.VALID, records)
        self._counted(RecordStatus.VALID, added, unsent=True)

    def outcome(self, outcome: SendOutcome) -> None:
        """What the sender settled for one record: a result, or an API or transport reject."""
        item, status = outcome.item, outcome.status
        if status is not None:  # as result() does, one call fewer: this runs once a request
            self.journal.add_result(
                ResultRow(
                    item.row,
                    item.external_id,
                    status,
                    outcome.http_status,
                    outcome.attempts,
                    outcome.created_at,
                    outcome.updated_at,
                )
            )
            self._counted(status, this_run=item.row > 0)
            return
        reject = RejectRow(
            item.row,
            item.external_id,
            outcome.stage or RejectStage.API,
            outcome.reason or "",
            source=None,  # filled in from the file at the end of the run
            http_status=outcome.http_status,
            attempts=outcome.attempts,
        )
        self.reject(reject)

    def _counted(
        self, status: RecordStatus, count: int = 1, *, this_run: bool = True, unsent: bool = False
    ) -> None:
        """``this_run``: an input record's outcome (a deactivation is not one: rows below 1,
        counted neither among the run's records nor in its progress). ``unsent``: outcomes
        settled without a request (a batch's rejects, valid or unchanged records) wait for the
        commit thread rather than fill a group: a crash that loses them sends nothing again."""
        if this_run:
            self.counters.add(status, count)
            self.this_run += count
        if unsent:
            self.commits.check()
        else:
            self.commits.nudge(count)
