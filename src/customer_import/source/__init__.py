"""Read a CSV, Parquet or Excel export into numbered batches of text columns.

The first stage of the pipeline. Everything downstream sees the same shape, whatever the file:
a ``Batch`` holds a Polars frame with ``_row`` (the 1-based record number) followed by one
``pl.String`` column per source column, values exactly as read, plus the broken records whose
numbers fall in the batch's range. Record numbers are the contract with the rejects file and
resume, so they must stay exact: blank lines get no number, a broken record consumes one.

The modules, in the order a file meets them:

    files.py         the format a name means, readable or not, byte streams, the digest
    remote.py        s3:// and gs:// objects (copied once, hashed on the way), file:// URLs
    encoding.py      which codec a CSV is read with (BOM, "auto"), checked over the whole file
    csv_file.py      delimiter, header, then numbered batches of a CSV / TSV (gzipped too)
    csv_stretches.py Polars reads the clean stretches, the record parser the rest
    csv_records.py   the record parser: exact numbering, broken lines with their raw text
    parquet_file.py  Parquet batches, every typed column turned into text
    excel_file.py    .xlsx: one sheet, every cell as text (the excel extra)
    table.py         ``Source``: an opened export, whatever its backend
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from customer_import.config import SourceConfig, is_url
from customer_import.source import files, remote
from customer_import.source.csv_file import open_csv
from customer_import.source.excel_file import open_excel
from customer_import.source.files import check_readable, format_of
from customer_import.source.parquet_file import open_parquet
from customer_import.source.table import Source, unique_names

__all__ = [
    "Source",
    "file_digest",
    "open_source",
    "shared_copy",
    "unique_names",
]


def open_source(
    config: SourceConfig,
    path: Path | str,
    copied: Path | None = None,
    *,
    pinned: frozenset[str] = frozenset(),
) -> Source:
    """Open an export and read its header: a local path, or an s3://, gs:// or file:// URL.

    ConfigError for a URL the job cannot use; InputError when the input cannot be read as a
    table. A remote object is copied first (``remote.py``); ``Source.close`` deletes the copy.
    ``copied``: a copy already made by whoever calls, read instead of the input and left for
    the caller to delete: a remote object's (``shared_copy``), or a local file's (one in the
    output folder, which a run keeps in its history). ``pinned``: the ``config`` settings
    given for this input on the command line ("encoding", "delimiter"), which win even over
    what the tool's own rejects file is known to be.
    """
    if not is_url(path):
        local = Path(path)
        return _open_file(config, copied or local, str(local), local.name, pinned)
    url = remote.parse_url(str(path))
    if url.scheme == "file":
        return _open_file(config, remote.file_url_path(url), url.text, url.file_name, pinned)
    if copied is not None:
        return _open_file(config, copied, url.text, url.file_name, pinned)
    copy = _fetched(url)
    try:
        source = _open_file(config, copy.path, url.text, url.file_name, pinned)
    except BaseException:
        copy.discard()
        raise
    source.own_copy(copy.digest, copy.discard)
    return source


@contextmanager
def shared_copy(path: Path | str | None) -> Iterator[Path | None]:
    """For several processes that read one input (``run --workers``): a remote object is copied
    once, here, and deleted when they are done; None for a local file or file:// URL."""
    if path is None or not is_url(path):
        yield None
        return
    url = remote.parse_url(str(path))
    if url.scheme == "file":
        yield None
        return
    copy = _fetched(url)
    try:
        yield copy.path
    finally:
        copy.discard()


def _fetched(url: remote.Url) -> remote.RemoteCopy:
    if not _is_excel(url.file_name):
        format_of(url.file_name, url.text)  # an unsupported format fails before any transfer
    return remote.fetch(url)


def _is_excel(file_name: str) -> bool:
    return file_name.lower().endswith(".xlsx")


def file_digest(path: Path | str) -> str:
    """``sha256:<hex>`` of the input's bytes (what --resume compares); ``Source.digest`` is the
    same value without a second read of a remote object."""
    if not is_url(path):
        return files.file_digest(Path(path))
    url = remote.parse_url(str(path))
    if url.scheme == "file":
        return files.file_digest(remote.file_url_path(url), url.text)
    return remote.remote_digest(url)


def _open_file(
    config: SourceConfig, path: Path, name: str, file_name: str, pinned: frozenset[str]
) -> Source:
    """``path`` is read; ``name`` (what the user gave) is shown; ``file_name`` says the format."""
    if _is_excel(file_name):
        check_readable(path, name)
        return open_excel(config, path, name)
    suffix, gzipped = format_of(file_name, name)
    check_readable(path, name)
    if suffix == ".parquet":
        return open_parquet(config, path, name)
    return open_csv(config, path, name, suffix, gzipped, pinned)
