"""Record: every record's outcome, kept so that a run can be resumed, and an incremental sync's
state.

    journal.py      SQLite journal of outcomes: the run's single source of truth
    recorder.py     outcomes into the journal, counted for progress
    commits.py      the journal committed in groups (a crash re-sends at most twice the
                    concurrency)
    bulk.py         what comes a batch at a time (valid, unchanged, names): a blob a batch
    results.py      results' rows, rendered by Polars a window of record numbers at a time
    cells.py        a results column as an output cell shows it (formula-safe)
    opening.py      which journal a run gets: new, the unfinished one resumed, or after it
                    was closed as abandoned; or a refusal
    history.py      history/<run id>/: every run's files, the latest copied to the top
    locks.py        one run at a time on a folder
    snapshot.py     incremental state: the body the API holds for each externalId
    segments.py     that state's Parquet segments and the generation meta.json names
    incremental.py  one run's use of that state: diff, deactivations, merge
"""
