"""Where each record of a fed back rejects file first was: source_row and source_file.

The rejects file's ``_row`` is the record's number in the run that rejected it; a rejects file
of a fed back one carries the first run's numbers and file already, in its own source_row and
source_file columns, which are kept. Read once more at the end of the run, like the source
values of API rejects (a fed back file is small, and the run keeps its own copy of it).
"""

from __future__ import annotations

import logging

from customer_import.contracts import REJECTS_TRAILER, ROW
from customer_import.errors import InputChanged, InputError
from customer_import.outputs.files import LINEAGE
from customer_import.record.journal import Journal
from customer_import.source import Source

log = logging.getLogger("customer_import")


def record_lineage(journal: Journal, source: Source, first_file: str) -> str | None:
    """Each record's (source_row, source_file) into the journal; ``first_file`` is the name of
    the rejecting run's input. A warning when the file cannot be read again."""
    n = len(REJECTS_TRAILER)
    old_row = source.columns[-n]
    chained = tuple(source.header[-n - len(LINEAGE) : -n]) == LINEAGE
    earlier = source.columns[-n - len(LINEAGE) : -n] if chained else []
    try:
        for batch in source.batches(columns=[*earlier, old_row]):
            frame = batch.frame
            if chained:
                rows, first_rows, files, olds = (frame[c].to_list() for c in frame.columns)
                journal.set_lineage(
                    (row, (first or old).strip(), (file or first_file).strip())
                    for row, first, file, old in zip(rows, first_rows, files, olds, strict=True)
                )
            else:
                pairs = zip(frame[ROW].to_list(), frame[old_row].to_list(), strict=True)
                journal.set_lineage((row, old.strip(), first_file) for row, old in pairs)
    except (InputError, InputChanged, OSError) as exc:
        warning = f"source_row and source_file could not be read back from the input ({exc})"
        log.warning("%s", warning)
        return warning
    return None
