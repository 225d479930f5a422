"""The last stage of every run, however it ended: reject sources, the summary, the files.

API and transport rejects learn their source values only at the end, from one more read of
the input. That read may fail (the file was moved away or changed after it was read); the
files are written all the same, those rejects without their source values, and a warning
says so.

The files go into the run's folder in ``history/``, then are copied to the top of the output
folder (``History.publish``): the top-level files are always the latest run's.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import polars as pl

from customer_import.contracts import ROW, RecordStatus, RunReport
from customer_import.errors import InputChanged, InputError
from customer_import.outputs.excel import require_xlsxwriter
from customer_import.outputs.files import (
    MISSING_NAME,
    REJECTS,
    RESULTS,
    Layout,
    rejects_columns,
    write_missing,
    write_rejects,
    write_results,
    write_summary,
)
from customer_import.outputs.lineage import record_lineage
from customer_import.outputs.metrics import write_metrics
from customer_import.outputs.report import write_report
from customer_import.outputs.summary import RunFacts, RunIdentity, build_summary
from customer_import.record.history import History
from customer_import.record.journal import Journal
from customer_import.source import Source

log = logging.getLogger("customer_import")


class RunOutputs:
    """Where a run's files go, and which source columns its rejects file carries.

    ``first_file``: for a fed back rejects file, the name of the input of the run that wrote
    it (results and rejects then say where each record first was: source_row, source_file).
    """

    def __init__(
        self,
        history: History,
        journal: Journal,
        source: Source,
        drop: list[str],
        run: RunIdentity,
        first_file: str = "",
    ) -> None:
        self.out_dir, self._journal, self._source, self._run = history.out_dir, journal, source, run
        self._history, self._first_file = history, first_file
        assert run.run_id is not None
        self.folder = history.folder(run.run_id)
        self.kept_columns, self.kept_header = rejects_columns(source.columns, source.header, drop)
        journal.set_meta(rejects_header=json.dumps(self.kept_header))  # for a killed run's
        self.layout = Layout.of(run.output)
        if self.layout.format == "xlsx":  # before anything is sent: the run could not end well
            require_xlsxwriter()

    def finish(self, facts: RunFacts, missing_ids: list[str]) -> RunReport:
        """Write results, rejects (CSV or workbooks), missing.csv, summary.json and
        report.html into the run's folder, then copy them to the top; returns the report."""
        warnings = [self._fill_reject_sources()]
        lineage = self._source.own_rejects
        if lineage:
            warnings.append(record_lineage(self._journal, self._source, self._first_file))
        self._journal.flush()
        results, rejects = self._layouts(warnings)
        found = [w for w in warnings if w is not None]
        if found:
            facts = dataclasses.replace(facts, warnings=[*facts.warnings, *found])
        summary = build_summary(self._run, facts, self._journal)
        write_results(self._journal, self.folder, lineage=lineage, layout=results)
        write_rejects(self._journal, self.folder, self.kept_header, lineage=lineage, layout=rejects)
        if missing_ids:
            write_missing(missing_ids, self._journal, self.folder, self.layout)
        else:  # the top-level files are this run's: an earlier night's list is not
            (self.folder / MISSING_NAME).unlink(missing_ok=True)
        write_summary(summary, self.folder)
        ending = facts.ending
        report = RunReport(
            ending.status, summary, self.out_dir, ending.message, ending.signum, ending.resumable
        )
        write_report(self.folder, report, timeline=facts.timeline, fields=facts.field_stats)
        self._history.publish(self.folder.name)
        if self._run.metrics_file is not None:
            write_metrics(self._run.metrics_file, report)
        return report

    def _layouts(self, warnings: list[str | None]) -> tuple[Layout, Layout]:
        """results' and rejects' layouts: CSV for one a worksheet cannot hold (a warning)."""
        counts = self._journal.count_by_status()
        rejected = counts.get(RecordStatus.REJECTED, 0)
        results, too_many = self.layout.fitting(RESULTS, sum(counts.values()) - rejected)
        rejects, too_many_rejects = self.layout.fitting(REJECTS, rejected)
        warnings += [too_many, too_many_rejects]
        return results, rejects

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
