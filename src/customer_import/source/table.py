"""The shape every backend yields: an opened ``Source`` and its numbered ``Batch``es, regrouped
by ``rebatched`` where a backend reads them in parts of other sizes."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Protocol, TypeVar

import polars as pl

from customer_import.contracts import ROW, Batch
from customer_import.errors import ConfigError, InputChanged, InputError
from customer_import.source.files import file_digest
from customer_import.threads import close_items

T = TypeVar("T")


class Backend(Protocol):
    def batches(
        self, select: list[int], names: list[str], first: int | None
    ) -> Iterator[Batch]: ...

    def close(self) -> None: ...


class Source:
    """An opened export: its header is known, its records are read by ``batches()``."""

    def __init__(
        self,
        path: Path,
        header: list[str],
        encoding: str,
        delimiter: str | None,
        backend: Backend,
        *,
        name: str | None = None,
        column_types: Mapping[str, pl.DataType] | None = None,
        own_rejects: bool = False,
    ) -> None:
        self.path = path
        """The local file read: the export itself, or the temporary copy of a remote object."""
        self.name = str(path) if name is None else name
        """What the user named the input (a path or a URL), for messages and the summary."""
        self.header = header
        self.columns = unique_names(header)
        self.column_types = dict(column_types or {})
        """A typed file's (Parquet) column types, by unique name; empty for text files. Batches
        hold text whatever the type: the mapping checks what a type can hold."""
        self.encoding = encoding
        self.delimiter = delimiter
        self.own_rejects = own_rejects
        """The tool's own rejects file, fed back: its last columns are _row,_stage,_reason,_raw."""
        stat = path.stat()
        self.size = stat.st_size
        self._identity: tuple[int, ...] | None = _identity(stat)
        self._backend = backend
        self._digest: str | None = None
        self._digest_at_end: Future[str] | None = None
        self._on_close: list[Callable[[], None]] = []
        # Open readers are closed by close(); weak so an abandoned one can still be collected.
        self._live: weakref.WeakSet[Iterator[Batch]] = weakref.WeakSet()

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the input's bytes (what --resume compares), computed once."""
        if self._digest is None:
            self._digest = file_digest(self.path, self.name)
        return self._digest

    def _digest_now(self) -> str:
        """The file's digest now: the one the last read started, or taken here."""
        if self._digest_at_end is not None:
            return self._digest_at_end.result()
        return file_digest(self.path, self.name)

    def own_copy(self, digest: str, discard: Callable[[], None]) -> None:
        """The file read is this source's own copy: its digest is known, nobody else writes
        it (so it is never checked for changes); close() deletes it."""
        self._digest = digest
        self._identity = None
        self._on_close.append(discard)

    def check_unchanged(self) -> None:
        """InputChanged when the file at the input's path is no longer the one opened (its
        size, modification time or inode). A path moved away is not a change: the file being
        read is still the one opened."""
        if self._identity is None:
            return
        try:
            now = _identity(self.path.stat())
        except FileNotFoundError:
            return
        if now != self._identity:
            raise InputChanged(self.name, "its size, modification time or inode changed")

    def changed(self) -> InputChanged | None:
        """At the end of a run: the check above, then the bytes' digest against the one taken
        when the run began (a change that kept the size and the modification time)."""
        try:
            self.check_unchanged()
            rehashed = self._identity is not None and self.path.exists()
            if rehashed and self._digest_now() != self.digest:
                raise InputChanged(self.name, "its content changed")
        except InputChanged as exc:
            return exc
        except InputError:
            return None  # gone, or unreadable now: what was read was checked as it was read
        return None

    def batches(
        self, columns: list[str] | None = None, *, first: int | None = None, last: bool = False
    ) -> Iterator[Batch]:
        """Read the file from the start; ``columns`` picks unique names (default: all).

        ``first`` caps the first batch's records, so that work on it can start sooner.
        ``last``: the run reads the file no more after this. Once it has read the whole file,
        the digest ``changed()`` compares is taken again, in a thread of its own, while the
        last batches are being worked on.
        """
        names = list(self.columns) if columns is None else list(columns)
        select = [self._index(name) for name in names]
        if len(set(names)) != len(names):
            raise ConfigError(f"column selection repeats a name: {names}")
        reader = self._checked(self._backend.batches(select, names, first), last=last)
        self._live.add(reader)
        return reader

    def _checked(self, reader: Iterator[Batch], *, last: bool) -> Iterator[Batch]:
        """Each batch handed on only once the file is found unchanged after reading it: no
        batch of a run ever comes from another version of the file."""
        try:
            for batch in reader:
                self.check_unchanged()
                yield batch
            if last and self._identity is not None:
                self._digest_at_end = _in_a_thread(partial(file_digest, self.path, self.name))
        finally:
            close_items(reader)

    def _index(self, name: str) -> int:
        try:
            return self.columns.index(name)
        except ValueError:
            known = ", ".join(repr(c) for c in self.columns)
            raise ConfigError(f"{self.name}: no column {name!r}; columns are {known}") from None

    def close(self) -> None:
        if self._digest_at_end is not None:  # no thread reads the file once it is closed
            with contextlib.suppress(InputError):
                self._digest_at_end.result()
        try:
            for reader in list(self._live):
                if isinstance(reader, Generator):
                    with contextlib.suppress(ValueError):  # running in another thread: its
                        reader.close()  # file is closed when the reader is collected
        finally:  # a downloaded copy is deleted whatever happened to the readers
            self._backend.close()
            while self._on_close:
                self._on_close.pop()()

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _in_a_thread(work: Callable[[], T]) -> Future[T]:
    """``work()`` run in a thread of its own; its result (or error) in the future."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except BaseException as exc:  # handed to whoever asks for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="digest", daemon=True).start()
    return future


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def unique_names(header: list[str]) -> list[str]:
    """Header names made unique: repeats get ``_2``, ``_3``...; empty cells become ``column_N``.

    ROW is taken by the record number, so a source column of that name is renamed too."""
    named = [name if name.strip() else f"column_{i}" for i, name in enumerate(header, 1)]
    # A suffix that is some other column's own name is skipped, so real names never change.
    taken = set(named)
    used: set[str] = {ROW}
    result = []
    for name in named:
        unique, k = name, 2
        while unique in used or (unique != name and unique in taken):
            unique, k = f"{name}_{k}", k + 1
        used.add(unique)
        result.append(unique)
    return result


class _Part(NamedTuple):
    first: int
    batch: Batch


def rebatched(parts: Iterator[Batch], first: int, size: int) -> Iterator[Batch]:
    """The parts' records regrouped into batches of ``first``, then ``size`` records; closed,
    it closes ``parts``."""
    held: list[Batch] = []
    count, want, number = 0, first, 1
    try:
        for batch in parts:
            part: _Part | None = _Part(number, batch)
            number += batch.records
            while part is not None:
                head, part = _split(part, want - count)
                held.append(head)
                count += head.records
                if count == want:
                    yield _joined(held)
                    held, count, want = [], 0, size
        if held:
            yield _joined(held)
    finally:
        close_items(parts)


def _split(part: _Part, room: int) -> tuple[Batch, _Part | None]:
    """The first ``room`` records of a part, and the rest (None when nothing is left)."""
    batch = part.batch
    if batch.records <= room:
        return batch, None
    cut = part.first + room  # the first record number left for the rest
    failures = [f for f in batch.failures if f.row < cut]
    rows = room - len(failures)
    head = Batch(batch.frame.slice(0, rows), failures)
    rest = Batch(batch.frame.slice(rows), [f for f in batch.failures if f.row >= cut])
    return head, _Part(cut, rest)


def _joined(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    failures = [f for b in batches for f in b.failures]
    return Batch(pl.concat([b.frame for b in batches], rechunk=True), failures)
