"""Bare client loops: the same request bodies sent by a plain loop of one client stack.

    .venv/bin/python bench/bare_loops.py --stack aiohttp --url http://127.0.0.1:PORT \\
        --bodies bench/data/bodies.ndjson [--concurrency 64] [--duration 3] [--warmup 0.5]

Prints one JSON object: requests, seconds, client CPU seconds (getrusage of this process over
the measured phase only), statuses. Each loop runs in its own process so the CPU it reports is
its own. A fixed pool of ``concurrency`` workers takes bodies in file order; the loop stops at
the deadline or when every body was sent once, whichever comes first (bounded in time and
count). uvloop is used when importable, as the job does.

Stacks:
  aiohttp          aiohttp.ClientSession, TCPConnector(limit=C)
  httpx-transport  httpx.Request handed straight to httpx_aiohttp.AiohttpTransport, no
                   AsyncClient (the job's stack: see src/customer_import/api_client.py)
  httpx-aiohttp    httpx.AsyncClient over httpx_aiohttp.AiohttpTransport
  httpx            httpx.AsyncClient with its default transport (httpcore)
  client           the job's own ApiClient (make_client): its post() in a bare loop, no Sender
  sender           the job's own Sender and make_client, fed the bodies (no reading/validation)
  sequential       httpx.Client (sync), one request at a time: what a merchant writes first
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from common import API_KEY, MERCHANT_ID, run_uvloop
from customer_import.version import __version__
from data import read_bodies

if TYPE_CHECKING:
    import httpx

PATH: Final = "/customers/add-update"
HEADERS: Final = {  # the job's own: its user-agent is one more header for httpx to handle
    "user-agent": f"customer-import/{__version__}",  # send.client.USER_AGENT, without httpx
    "content-type": "application/json",
    "x-api-key": API_KEY,
    "x-merchant-id": MERCHANT_ID,
}
STACKS: Final = (
    "aiohttp",
    "httpx-transport",
    "httpx-aiohttp",
    "httpx",
    "client",
    "sender",
    "sequential",
)
Send = Callable[[bytes], Awaitable[int]]
SENDER_BATCH: Final = 1_000  # items handed to the Sender at a time (the job's first batch)


@dataclass(slots=True)
class LoopResult:
    stack: str
    concurrency: int
    requests: int
    seconds: float
    cpu_s: float
    statuses: dict[str, int]

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s * 1000 / self.requests if self.requests else float("nan")


class Meter:
    """Wall and CPU time of this process over one phase."""

    def __enter__(self) -> Meter:
        self.started, self.cpu0 = time.perf_counter(), _cpu_s()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.cpu_s = _cpu_s() - self.cpu0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Bodies:
    """Hands out each body once, in order, until the deadline (shared by all workers)."""

    def __init__(self, bodies: list[bytes]) -> None:
        self._bodies = bodies
        self._next = 0
        self.deadline = 0.0

    def until(self, seconds: float) -> Bodies:
        self.deadline = time.monotonic() + seconds
        return self

    def take(self) -> bytes | None:
        if self._next >= len(self._bodies) or time.monotonic() >= self.deadline:
            return None
        self._next += 1
        return self._bodies[self._next - 1]

    def all(self) -> list[bytes]:
        """Every body, whether handed out or not."""
        return self._bodies

    def take_many(self, count: int) -> list[bytes]:
        """Up to ``count`` bodies, fewer (or none) at the end or past the deadline."""
        if time.monotonic() >= self.deadline:
            return []
        taken = self._bodies[self._next : self._next + count]
        self._next += len(taken)
        return taken


async def _pool(send: Send, bodies: Bodies, concurrency: int) -> Counter[int]:
    """``concurrency`` workers sending until ``bodies`` runs out."""
    statuses: Counter[int] = Counter()

    async def worker() -> None:
        while (body := bodies.take()) is not None:
            statuses[await send(body)] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def _measured(send: Send, bodies: Bodies, args: argparse.Namespace) -> LoopResult:
    await _pool(send, bodies.until(args.warmup), args.concurrency)
    with Meter() as meter:
        statuses = await _pool(send, bodies.until(args.duration), args.concurrency)
    return _result(args, statuses, meter)


def _result(args: argparse.Namespace, statuses: Counter[int], meter: Meter) -> LoopResult:
    requests = sum(statuses.values())
    by_status = {str(k): v for k, v in sorted(statuses.items())}
    return LoopResult(args.stack, args.concurrency, requests, meter.seconds, meter.cpu_s, by_status)


async def aiohttp_loop(bodies: Bodies, args: argparse.Namespace) -> LoopResult:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(args.url, headers=HEADERS, connector=connector) as session:

        async def send(body: bytes) -> int:
            async with session.post(PATH, data=body) as response:
                await response.read()
                return response.status

        return await _measured(send, bodies, args)


def _httpx_client(url: str, concurrency: int, aiohttp_transport: bool) -> httpx.AsyncClient:
    """Built as make_client builds the job's: pool of ``concurrency`` connections, 30 s timeout."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = None
    if aiohttp_transport:
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits)
    return httpx.AsyncClient(
        base_url=url, headers=HEADERS, timeout=30, limits=limits, transport=transport
    )


async def httpx_loop(bodies: Bodies, args: argparse.Namespace) -> LoopResult:
    client = _httpx_client(args.url, args.concurrency, args.stack == "httpx-aiohttp")
    async with client:

        async def send(body: bytes) -> int:
            return (await client.post(PATH, content=body)).status_code

        return await _measured(send, bodies, args)


async def transport_loop(bodies: Bodies, args: argparse.Namespace) -> LoopResult:
    """httpx requests handed to the aiohttp transport itself: no AsyncClient layers."""
    import httpx
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    url = httpx.URL(args.url).join(PATH)
    headers = httpx.Headers(HEADERS)
    extensions = {"timeout": httpx.Timeout(30).as_dict()}
    async with AiohttpTransport(limits=limits) as transport:

        async def send(body: bytes) -> int:
            request = httpx.Request(
                "POST", url, headers=headers, content=body, extensions=extensions
            )
            response = await transport.handle_async_request(request)
            await response.aread()
            return response.status_code

        return await _measured(send, bodies, args)


async def client_loop(bodies: Bodies, args: argparse.Namespace) -> LoopResult:
    """The job's ApiClient in a bare loop: what it adds to the transport, without the Sender."""
    from customer_import.send.client import make_client
    from customer_import.send.sender import PATH as JOB_PATH

    client = make_client(
        args.url, dict(HEADERS), concurrency=args.concurrency, timeout=30, transport_name="aiohttp"
    )
    async with client:

        async def send(body: bytes) -> int:
            return (await client.post(JOB_PATH, content=body)).status_code

        return await _measured(send, bodies, args)


async def sender_loop(bodies: Bodies, args: argparse.Namespace) -> LoopResult:
    """The job's Sender alone: its workers, retry policy, pacer and stats, minus the pipeline."""
    from customer_import.contracts import SendItem, SendOutcome
    from customer_import.send.client import make_client
    from customer_import.send.sender import RetryPolicy, Sender

    statuses: Counter[int] = Counter()
    # The Sender takes only an answer that echoes the item's externalId as a success; the
    # pipeline knows each record's id, so it is looked up here rather than parsed while measured.
    ids = {body: json.loads(body)["externalId"] for body in bodies.all()}

    def on_outcome(outcome: SendOutcome) -> None:
        statuses[outcome.http_status or 0] += 1

    async def items(seconds: float) -> AsyncIterator[list[SendItem]]:
        bodies.until(seconds)
        while batch := [SendItem(0, ids[body], body) for body in bodies.take_many(SENDER_BATCH)]:
            yield batch  # the pipeline hands the Sender a batch of the file at a time

    client = make_client(
        args.url, dict(HEADERS), concurrency=args.concurrency, timeout=30, transport_name="aiohttp"
    )
    async with client:
        for phase in ("warmup", "measured"):
            statuses.clear()
            sender = Sender(
                client, concurrency=args.concurrency, policy=RetryPolicy(), on_outcome=on_outcome
            )
            with Meter() as meter:
                await sender.run(items(args.warmup if phase == "warmup" else args.duration))
    return _result(args, statuses, meter)


def sequential_loop(bodies: Bodies, args: argparse.Namespace) -> LoopResult:
    import httpx

    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=args.url, headers=HEADERS, timeout=30) as client:
        for phase_s in (args.warmup, args.duration):
            statuses.clear()
            bodies.until(phase_s)
            with Meter() as meter:
                while (body := bodies.take()) is not None:
                    statuses[client.post(PATH, content=body).status_code] += 1
    return _result(args, statuses, meter)


def run(args: argparse.Namespace) -> LoopResult:
    bodies = Bodies(read_bodies(args.bodies))
    if args.stack == "sequential":
        return sequential_loop(bodies, args)
    loops = {
        "aiohttp": aiohttp_loop,
        "httpx-transport": transport_loop,
        "client": client_loop,
        "sender": sender_loop,
    }
    loop = loops.get(args.stack, httpx_loop)
    return run_uvloop(loop(bodies, args))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=STACKS, required=True)
    parser.add_argument("--url", required=True, help="the sandbox, e.g. http://127.0.0.1:4000")
    parser.add_argument("--bodies", type=Path, required=True, help="one JSON body a line")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds first")
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://127.", "http://localhost")):
        parser.error("bare loops only talk to a loopback sandbox")
    return args


def main() -> None:
    print(json.dumps(asdict(run(parse_args()))))


if __name__ == "__main__":
    main()
