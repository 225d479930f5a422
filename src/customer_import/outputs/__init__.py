"""Outputs: what a run writes, rendered from the journal on every exit path.

finish.py    the last stage: reject sources, summary, files
files.py     results.csv, rejects.csv, missing.csv, summary.json (atomic, owner-only)
summary.py   summary.json's numbers
"""
