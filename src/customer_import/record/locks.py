"""One run at a time on a folder: an OS lock (``flock``) on a file in it.

The kernel releases the lock when the process ends, however it ends (``kill -9`` too), so a
lock is never left stale; a second run is refused at once, naming the holder's pid and start
time, rather than send every record a second time beside the first.
"""

from __future__ import annotations

import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from customer_import.errors import ConfigError

LOCK_NAME: Final = ".lock"


def private_folder(folder: Path) -> Path:
    """``folder``, created if need be, and made the owner's only (0700), whatever it was: it
    holds what customers' records say."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    return folder


def private_file(path: Path) -> Path:
    """``path`` made readable and writable by the owner only (0600)."""
    path.chmod(0o600)
    return path


class FolderLock:
    """Held from ``acquire`` to ``release`` (or the end of the process). ``private``: the
    folder is made the owner's only (``private_folder``)."""

    def __init__(self, folder: Path, what: str, *, private: bool = False) -> None:
        self.folder, self._what, self._private = folder, what, private
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """ConfigError when another process holds it."""
        if self._private:
            private_folder(self.folder)
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(
                f"{self._what} {self.folder} is in use by another run ({holder}): wait for it "
                "to end, or stop it; two runs at once would send records twice"
            ) from None
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the file stays: removing it would race with the next run
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
