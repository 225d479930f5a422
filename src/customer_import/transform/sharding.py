"""Pure: which records belong to shard K of N, by a stable hash of the externalId.

``shard_of(id) = crc32(utf-8 bytes of the cleaned id) mod N + 1``: the same on every machine,
Python and library version, so N copies of the job started by any orchestrator split a file
with no coordination and no record sent twice. All records of one id land in one shard, so
repeated ids are still decided together. A record without a usable id (empty, Excel-mangled,
or a line that could not be parsed) belongs to shard ``(record number - 1) mod N + 1``.

A job's limits are the whole run's, however many shards run it: each shard takes its share of
``concurrency`` (the shares add up to it) and ``rate_limit / N``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from customer_import.config import JobConfig, RunMode
from customer_import.contracts import ROW, Batch
from customer_import.errors import ConfigError
from customer_import.transform.mapping import MappingPlan, id_only

_SPEC = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, spec: str) -> Shard:
        match = _SPEC.match(spec.strip())
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ConfigError(f"--shard {spec!r}: expected K/N with 1 <= K <= N, e.g. 2/4")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def concurrency(self, total: int) -> int:
        """This shard's share of the requests a whole run may have in flight."""
        return concurrency_shares(total, self.count)[self.index - 1]

    def rate_limit(self, total: float | None) -> float | None:
        return None if total is None else total / self.count

    def owns_row(self, row: int) -> bool:
        """A record without a usable id (a broken line) belongs to a shard by its number."""
        return (row - 1) % self.count + 1 == self.index

    def owns(self, ids: pl.Series, rows: pl.Series) -> pl.Series:
        by_id = [None if i is None else shard_of(i, self.count) for i in ids.to_list()]
        by_row = (rows - 1) % self.count + 1
        owner = pl.Series(by_id, dtype=pl.Int64).fill_null(by_row)
        return owner == self.index


def check_shardable(job: JobConfig, mode: RunMode | None) -> None:
    """An incremental sync keeps one state per job: shards would each take the others'
    customers for missing ones, and write the one snapshot at once. (``--full`` on an
    incremental job still refreshes its state.)"""
    if "incremental" in (job.mode, mode):
        raise ConfigError(
            "an incremental job runs in one process: drop --workers/--shard (shards suit full "
            "runs: a migration, a backfill)"
        )


def concurrency_shares(total: int, count: int) -> list[int]:
    """``total`` requests in flight split between ``count`` shards: parts differing by at most
    one, adding up to ``total``; ConfigError when a shard would get none."""
    if total < count:
        raise ConfigError(
            f"concurrency {total} is below the {count} shards of this run: each shard needs at "
            f"least one request in flight (the job's concurrency is shared between its shards); "
            f"raise api.concurrency or --concurrency to {count} or more"
        )
    return [total // count + (k < total % count) for k in range(count)]


def shard_of(external_id: str, count: int) -> int:
    return zlib.crc32(external_id.encode("utf-8")) % count + 1


def sharded(batches: Iterator[Batch], plan: MappingPlan, shard: Shard | None) -> Iterator[Batch]:
    """The batches with only this shard's records (all of them without a shard)."""
    for batch in batches:
        if shard is None:
            yield batch
            continue
        mask = shard.owns(id_only(batch.frame, plan), batch.frame[ROW])
        failures = [f for f in batch.failures if shard.owns_row(f.row)]
        yield Batch(frame=batch.frame.filter(mask), failures=failures)
