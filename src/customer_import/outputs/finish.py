"""The last stage of every run, however it ended: reject sources, the summary, the files.

API and transport rejects learn their source values only at the end, from one more read of
the input. That read may fail (the file was moved away or changed after it was read); the
files are written all the same, those rejects without their source values, and a warning
says so.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import polars as pl

from customer_import.contracts import ROW, RunReport
from customer_import.errors import InputChanged, InputError
from customer_import.outputs.files import (
    MISSING_NAME,
    rejects_columns,
    write_missing,
    write_rejects,
    write_results,
    write_summary,
)
from customer_import.outputs.metrics import write_metrics
from customer_import.outputs.report import write_report
from customer_import.outputs.summary import RunFacts, RunIdentity, build_summary
from customer_import.record.journal import Journal
from customer_import.source import Source

log = logging.getLogger("customer_import")


class RunOutputs:
    """Where a run's files go, and which source columns its rejects file carries."""

    def __init__(
        self, out_dir: Path, journal: Journal, source: Source, drop: list[str], run: RunIdentity
    ) -> None:
        self.out_dir, self._journal, self._source, self._run = out_dir, journal, source, run
        self.kept_columns, self.kept_header = rejects_columns(source.columns, source.header, drop)

    def finish(self, facts: RunFacts, missing_ids: list[str]) -> RunReport:
        """Write results.csv, rejects.csv, missing.csv and summary.json; returns the report."""
        unread = self._fill_reject_sources()
        if unread is not None:
            facts = dataclasses.replace(facts, warnings=[*facts.warnings, unread])
        summary = build_summary(self._run, facts, self._journal)
        self._journal.flush()
        write_results(self._journal, self.out_dir)
        write_rejects(self._journal, self.out_dir, self.kept_header)
        if missing_ids:
            write_missing(missing_ids, self._journal, self.out_dir)
        else:  # the top-level files are this run's: an earlier night's list is not
            (self.out_dir / MISSING_NAME).unlink(missing_ok=True)
        write_summary(summary, self.out_dir)
        ending = facts.ending
        report = RunReport(
            ending.status, summary, self.out_dir, ending.message, ending.signum, ending.resumable
        )
        write_report(self.out_dir, report, timeline=facts.timeline, fields=facts.field_stats)
        if self._run.metrics_file is not None:
            write_metrics(self._run.metrics_file, report)
        return report

    def _fill_reject_sources(self) -> str | None:
        """Source values of API and transport rejects, from one more read of the file; a
        warning when the file cannot be read again."""
        missing = self._journal.rows_missing_source()
        if not missing:
            return None
        wanted = pl.Series(ROW, missing, dtype=pl.Int64).implode()
        try:
            for batch in self._source.batches(columns=self.kept_columns):
                found = batch.frame.filter(pl.col(ROW).is_in(wanted))
                rows = zip(found[ROW].to_list(), found.drop(ROW).rows(), strict=True)
                self._journal.set_sources(rows)
        except (InputError, InputChanged, OSError) as exc:
            warning = (
                f"the source values of {len(missing)} API or transport rejects could not be read "
                f"back from the input ({exc}): rejects.csv lists them with their record numbers "
                "and reasons only"
            )
            log.warning("%s", warning)
            return warning
        return None
