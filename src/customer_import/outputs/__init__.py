"""Outputs: what a run writes, rendered from the journal on every exit path.

finish.py    the last stage: reject sources, summary, files
files.py     results.csv, rejects.csv, missing.csv, summary.json (atomic, owner-only)
summary.py   summary.json's numbers
attempts.py  this attempt's figures, and every attempt's (a resumed run)
report.py    report.html: the run for a person (svg.py draws its charts)
metrics.py   [output] metrics_file: the last run for Prometheus
lineage.py   source_row and source_file of a fed back rejects file's records
abandoned.py an unfinished run closed by a later one: pending.csv, its summary marked
"""
