"""Run: the order of the stages (``pipeline.py``) and what a run needs around them.

pipeline.py   run_job(): the only module that knows the order of the stages
options.py    what a caller may set beyond the job file
settings.py   flags > environment > job file > default
folder.py     the output folder: lock, journal, history folder, a kept copy of the input
ending.py     how a run ended, and what the person reading it should do
progress.py   the progress callback, never in the way
process.py    signal handlers, the garbage collector, the event loop
"""
