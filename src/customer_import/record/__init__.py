"""Record: every record's outcome, kept so that a run can be resumed, and an incremental sync's
state.

    journal.py      SQLite journal of outcomes: the run's single source of truth
    recorder.py     outcomes into the journal, counted for progress
    snapshot.py     incremental state: the body the API holds for each externalId
    incremental.py  one run's use of that state: diff, deactivations, merge
"""
