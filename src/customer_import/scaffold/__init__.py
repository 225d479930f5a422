"""``customer-import init``: a commented job file for an export the job has never seen.

The modules, in the order an export meets them:

    sample.py    open it as a run would ("auto" encoding and delimiter), tell a header from a
                 first record, keep the first records' values
    names.py     column names compared case-, accent- and punctuation-insensitively
    synonyms.py  the column names of common exports and their translations (data)
    draft.py     the mapping being drafted: fields, the reasons for them, what is left out
    by_name.py   a file with a header: columns by their names
    by_values.py a file without one: columns by their values, named by position
    regions.py   default_region from the phone numbers, a country column, the names' language
    booleans.py  true/false words from the values of a boolean column
    choose.py    the steps above in order
    render.py    the TOML text, every choice explained in a comment
    job_file.py  ``init_job``: all of it, and the file written (never over another)

The library never prints: ``init_job`` returns what it wrote, and ``cli`` shows it and runs
``check`` on the new job.
"""

from __future__ import annotations

from customer_import.scaffold.job_file import InitResult, init_job

__all__ = ["InitResult", "init_job"]
