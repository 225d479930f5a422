"""The Sender's own cost a request: the job's Sender against a bare worker loop, no network.

    .venv/bin/python bench/sender_overhead.py                 # 20,000 items, best of 8
    .venv/bin/python bench/sender_overhead.py --recorded      # and each outcome recorded
    valgrind --tool=callgrind .venv/bin/python bench/sender_overhead.py --only sender --items N

Both send through a client whose ``post`` yields to the event loop once and returns the same
stored-customer answer, so what is left is the Sender's work: taking an item, the circuit
breaker and pacer, stats and latency histogram, classifying the answer, parsing its timestamps
and building the outcome. The machine's noise only ever adds time, so the best of several
repeats is reported (µs a request). A real request through the job's stack costs ~250-350 µs.
With ``--recorded`` a third loop hands every outcome to the job's ``Recorder`` over a journal
in a scratch folder, committed in groups of the concurrency as a run commits them (its
timer thread included): what recording an outcome adds to the Sender.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from common import run_uvloop
from customer_import.contracts import SendItem, SendOutcome
from customer_import.record.journal import Journal
from customer_import.record.recorder import Recorder
from customer_import.send.sender import RetryPolicy, Sender

STORED = httpx.Response(
    201,
    content=b'{"externalId":"C-0000001","firstName":"Jennifer","lastName":"Hall",'
    b'"phoneNumber":"+13052786809","active":true,'
    b'"notificationOptions":{"notifyEmail":false,"notifyPhone":false},'
    b'"createdAt":"2026-11-29T16:35:11.772Z","updatedAt":"2026-11-29T16:35:11.772Z"}',
)
STORED_ID = "C-0000001"
CONCURRENCY = 64
BATCH = 10_000  # the job's batch_size


class InstantClient:
    async def post(self, path: str, *, content: bytes) -> httpx.Response:
        await asyncio.sleep(0)
        return STORED


async def bare(count: int) -> None:
    """``CONCURRENCY`` workers, each posting and reading the status, nothing else."""
    client, taken, statuses = InstantClient(), 0, 0

    async def worker() -> None:
        nonlocal taken, statuses
        while taken < count:
            taken += 1
            statuses += (await client.post("/", content=b"{}")).status_code

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def sender(count: int, on_outcome: Callable[[SendOutcome], None] = lambda o: None) -> None:
    async def batches() -> AsyncIterator[list[SendItem]]:
        for start in range(0, count, BATCH):
            await asyncio.sleep(0)
            # the id STORED echoes: any other answer is not the API's, and is retried
            rows = range(start + 1, min(count, start + BATCH) + 1)  # input records: from 1
            yield [SendItem(row, STORED_ID, b"{}") for row in rows]

    client: Any = InstantClient()  # duck-typed: the Sender only calls post()
    run = Sender(client, concurrency=CONCURRENCY, policy=RetryPolicy(), on_outcome=on_outcome)
    await run.run(batches())


async def recorded(count: int) -> None:
    """The Sender, each outcome recorded as a run records it."""
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "journal.sqlite")
        recorder = Recorder(journal, group=CONCURRENCY)
        with recorder.commits:
            await sender(count, recorder.outcome)
        journal.flush()


LOOPS: dict[str, Callable[[int], Coroutine[Any, Any, None]]] = {
    "bare": bare,
    "sender": sender,
    "recorded": recorded,
}


def best_us(loop: Callable[[int], Coroutine[Any, Any, None]], count: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run_uvloop(loop(count))
        best = min(best, (time.perf_counter() - started) / count * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--recorded", action="store_true", help="and with a Recorder")
    parser.add_argument(
        "--only", choices=LOOPS, help="run this loop once (e.g. under callgrind, N and 2N items)"
    )
    args = parser.parse_args()
    if args.only:
        run_uvloop(LOOPS[args.only](args.items))
        return
    plain = best_us(bare, args.items, args.repeats)
    job = best_us(sender, args.items, args.repeats)
    print(f"bare worker loop: {plain:.1f} us a request")
    print(f"job's Sender:     {job:.1f} us a request ({job - plain:.1f} us of its own)")
    if args.recorded:
        both = best_us(recorded, args.items, args.repeats)
        print(f"Sender, recorded: {both:.1f} us a request ({both - job:.1f} us recording)")


if __name__ == "__main__":
    main()
