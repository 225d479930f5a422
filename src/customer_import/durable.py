"""Files written whole or not at all: to a temporary name in the same folder, flushed to disk,
renamed over the old one, the folder flushed too. A crash or a full disk leaves the file
before it as it was."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from customer_import.errors import StorageFault


@contextmanager
def replaced_text(path: Path) -> Iterator[IO[str]]:
    """``path`` written as UTF-8 text (no newline translation: a CSV writer's own line ends);
    mode 0600. StorageFault when it cannot be written."""
    with _replaced(path, lambda fd: os.fdopen(fd, "w", encoding="utf-8", newline="")) as handle:
        yield handle


@contextmanager
def replaced_bytes(path: Path) -> Iterator[IO[bytes]]:
    """``path`` written as bytes; mode 0600. StorageFault when it cannot be written."""
    with _replaced(path, lambda fd: os.fdopen(fd, "wb")) as handle:
        yield handle


@contextmanager
def _replaced(path: Path, opened: Callable[[int], IO[Any]]) -> Iterator[IO[Any]]:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with opened(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        _synced(path.parent)  # the rename itself survives a power cut
    except OSError as exc:
        raise StorageFault(path, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _synced(folder: Path) -> None:
    """Best effort: some file systems cannot flush a folder (the file itself is on disk)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
