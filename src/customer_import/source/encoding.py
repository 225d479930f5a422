"""Which codec a CSV file is read with, checked over the whole file before anything is sent.

``config.encoding`` is any codec name, but a BOM decides (UTF-8 BOM -> utf-8-sig, UTF-16 BOM ->
utf-16) unless a UTF-16/32 codec is named. ``"auto"``: the BOM, else valid UTF-8 -> utf-8, else
cp1252. Undecodable bytes are found up front, so ``open_source`` fails instead of a run dying
half-way, and the message names the byte offset and line.
"""

from __future__ import annotations

import codecs
import zlib
from itertools import chain
from pathlib import Path

from customer_import.errors import ConfigError, InputError
from customer_import.source.files import BYTES_CHUNK, READ_ERRORS, open_binary


def resolve_encoding(path: Path, gzipped: bool, requested: str, name: str) -> str:
    """The codec to read with, after checking that the whole file decodes with it.

    ``name`` is what the user called the input (a path or URL), for messages."""
    head = _read_head(path, gzipped, name)
    if requested.strip().lower() == "auto":
        codec = _sniff_encoding(path, gzipped, head, name)
    else:
        codec = _codec_name(requested)
        bom = _bom_codec(head)
        # A BOM decides: no cp1252 or UTF-8 text starts with one, and decoding it with the
        # configured codec would change every accented letter silently (Excel's "CSV UTF-8"
        # and "Unicode Text" saves carry one). An explicit UTF-16/32 codec reads its own BOM.
        if bom is not None and not codec.startswith(("utf-16", "utf-32")):
            codec = bom
    problem = _decode_problem(path, gzipped, codec, name)
    if problem:
        raise InputError(
            f"{name}: {problem}; the file is not {codec}: "
            f'set encoding = "auto" (or "cp1252" for Windows exports) in [source]'
        )
    return codec


def _sniff_encoding(path: Path, gzipped: bool, head: bytes, name: str) -> str:
    bom = _bom_codec(head)
    if bom is not None:
        return bom
    return "utf-8" if _decode_problem(path, gzipped, "utf-8", name) is None else "cp1252"


def _bom_codec(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _codec_name(requested: str) -> str:
    try:
        return codecs.lookup(requested).name
    except LookupError:
        raise ConfigError(
            f'unknown encoding {requested!r}; use a Python codec name or "auto"'
        ) from None


def _read_head(path: Path, gzipped: bool, name: str) -> bytes:
    try:
        with open_binary(path, gzipped) as f:
            return f.read(4)
    except READ_ERRORS as exc:
        raise InputError(f"{name}: cannot read the file: {exc}") from exc


def _decode_problem(path: Path, gzipped: bool, codec: str, name: str) -> str | None:
    """Where the file first fails to decode ("cannot decode byte 0x.. at offset N (line L)")."""
    decoder = codecs.getincrementaldecoder(codec)()
    offset = lines = 0
    try:
        with open_binary(path, gzipped) as f:
            for chunk in chain(iter(lambda: f.read(BYTES_CHUNK), b""), [b""]):
                state = decoder.getstate()
                try:
                    lines += decoder.decode(chunk, final=not chunk).count("\n")
                except UnicodeDecodeError as exc:
                    return _describe_decode_error(exc, codec, state, offset, lines)
                offset += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{name}: cannot read the file: {exc}") from exc
    return None


def _describe_decode_error(
    exc: UnicodeDecodeError, codec: str, state: tuple[bytes, int], offset: int, lines: int
) -> str:
    pending = state[0]
    at = offset - len(pending) + exc.start
    # Count line breaks before the bad byte with a decoder in the same state (utf-16 byte order).
    counter = codecs.getincrementaldecoder(codec)(errors="replace")
    counter.setstate(state)
    line = lines + counter.decode(exc.object[len(pending) : exc.start]).count("\n") + 1
    bad = exc.object[exc.start : exc.start + 1].hex()
    return f"cannot decode byte 0x{bad} at offset {at} (line {line}) as {codec}"
