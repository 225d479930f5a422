"""Local files: which format a name means, whether it can be read, its byte streams, its digest."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from pathlib import Path
from typing import IO, Final, cast

from customer_import.errors import InputError

CSV_SUFFIXES: Final = (".csv", ".tsv", ".txt")  # each also gzipped: ".csv.gz"
SUPPORTED: Final = ".csv .tsv .txt .csv.gz .parquet .xlsx"  # .xlsx: source/excel_file.py
BYTES_CHUNK: Final = 1 << 20
#: What reading a CSV byte stream can raise, besides csv.Error.
READ_ERRORS: Final = (UnicodeDecodeError, OSError, EOFError, zlib.error)


def format_of(file_name: str, name: str) -> tuple[str, bool]:
    """The table format's suffix (".csv", ".tsv", ".txt", ".parquet") and whether it is gzip.

    ``file_name`` is the file's (or object's) own name; ``name`` what the user gave, for messages.
    """
    lowered = file_name.lower()
    gzipped = lowered.endswith(".gz")
    suffix = Path(lowered.removesuffix(".gz")).suffix
    if suffix in CSV_SUFFIXES or (suffix == ".parquet" and not gzipped):
        return suffix, gzipped
    raise InputError(f"{name}: unsupported file type; expected one of {SUPPORTED}")


def check_readable(path: Path, name: str) -> None:
    if not path.is_file():
        raise InputError(f"{name}: file not found (or not a regular file)")
    if path.stat().st_size == 0:
        raise InputError(f"{name}: the file is empty (0 bytes); expected a header line")


def open_binary(path: Path, gzipped: bool) -> IO[bytes]:
    if gzipped:
        return cast(IO[bytes], gzip.open(path, "rb"))  # GzipFile: streamed, never loaded whole
    return path.open("rb", buffering=BYTES_CHUNK)


def open_text(path: Path, gzipped: bool, codec: str) -> io.TextIOWrapper:
    # newline="": line ends are left to the csv module, and raw text keeps its own CR/LF.
    return io.TextIOWrapper(open_binary(path, gzipped), encoding=codec, newline="")


def file_digest(path: Path, name: str | None = None) -> str:
    """``sha256:<hex>`` of the file's bytes, read in chunks (resume compares it)."""
    try:
        with Path(path).open("rb") as f:
            return f"sha256:{hashlib.file_digest(f, 'sha256').hexdigest()}"
    except OSError as exc:
        shown = path if name is None else name
        raise InputError(f"{shown}: cannot read the file: {exc.strerror or exc}") from exc
