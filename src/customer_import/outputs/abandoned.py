"""Closing an unfinished run that a later run did not resume (``on_unfinished``).

Its folder in ``history/`` already holds the files its last attempt wrote (unless it was
killed before writing them: then they are rendered here from its journal); ``pending.csv``
lists the records it never gave an outcome, and its ``summary.json`` says ``abandoned``, why
and by which run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from customer_import.contracts import RunStatus
from customer_import.durable import replaced_text
from customer_import.outputs.files import (
    RESULTS,
    SUMMARY_NAME,
    table_path,
    write_pending,
    write_rejects,
    write_results,
)
from customer_import.record.journal import JOURNAL_NAME, Journal

log = logging.getLogger("customer_import")


def close_abandoned(folder: Path, run_id: str, reason: str, by: str) -> int | None:
    """Mark the run in ``folder`` abandoned; returns how many records it left pending (None
    when that is not known: a --shard run's numbers are not all its own)."""
    summary = _summary(folder)
    with Journal(folder / JOURNAL_NAME) as journal:
        records = journal.get_meta("records") or summary.get("rows")
        pending = None
        if records is not None and not summary.get("shard"):
            pending = write_pending(journal.pending_rows(int(records)), folder)
        if table_path(folder, RESULTS) is None:  # killed before it wrote its files (as CSV)
            write_results(journal, folder)
            header = journal.get_meta("rejects_header")
            if header is not None:
                write_rejects(journal, folder, json.loads(header))
    summary.update(
        status=str(RunStatus.ABANDONED),
        message=f"abandoned by run {by}: {reason}",
        run_id=run_id,
        pending=pending if pending is not None else summary.get("pending"),
        abandoned_by=by,
    )
    with replaced_text(folder / SUMMARY_NAME) as handle:
        json.dump(summary, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    listed = "" if pending is None else f", {pending} records never sent (pending.csv)"
    log.warning(
        "the unfinished run %s was closed as abandoned (%s): its files are in %s%s; run %s starts",
        run_id,
        reason,
        folder,
        listed,
        by,
    )
    return pending


def _summary(folder: Path) -> dict[str, Any]:
    try:
        value = json.loads((folder / SUMMARY_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
