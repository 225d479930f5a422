"""Scale: a job as N processes (``workers.py``) or N machines (``--shard``), merged into one
set of outputs (``merge.py``)."""
