"""Read a CSV or Parquet export into numbered batches of text columns.

The first stage of the pipeline. Everything downstream sees the same shape, whatever the file:
a ``Batch`` holds a Polars frame with ``_row`` (the 1-based record number) followed by one
``pl.String`` column per source column, values exactly as read, plus the broken records whose
numbers fall in the batch's range. Record numbers are the contract with the rejects file and
resume, so they must stay exact: blank lines get no number, a broken record consumes one.

The modules, in the order a file meets them:

    files.py         the format a name means, readable or not, byte streams, the digest
    encoding.py      which codec a CSV is read with (BOM, "auto"), checked over the whole file
    csv_file.py      delimiter, header, then numbered batches of a CSV / TSV (gzipped too)
    csv_records.py   the record parser: exact numbering, broken lines with their raw text
    parquet_file.py  Parquet batches, every typed column turned into text
    table.py         ``Source``, ``Batch``, ``ParseFailure``: what every backend yields

Remote paths (s3://, a later issue): every CSV byte stream is opened by ``files.open_binary`` and
Parquet by ``pq.ParquetFile`` (which takes a file object); with ``files.check_readable`` and
``Source.size`` those are the only places that assume a local file.
"""

from __future__ import annotations

from pathlib import Path

from customer_import.config import SourceConfig
from customer_import.source.csv_file import open_csv
from customer_import.source.files import check_readable, file_digest, format_of
from customer_import.source.parquet_file import open_parquet
from customer_import.source.table import ROW, Batch, ParseFailure, Source, unique_names

__all__ = ["ROW", "Batch", "ParseFailure", "Source", "file_digest", "open_source", "unique_names"]


def open_source(config: SourceConfig, path: Path) -> Source:
    """Open an export and read its header; raise InputError when it cannot be read as a table."""
    path = Path(path)
    suffix, gzipped = format_of(path)
    check_readable(path)
    if suffix == ".parquet":
        return open_parquet(config, path)
    return open_csv(config, path, suffix, gzipped)
