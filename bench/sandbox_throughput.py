"""Requests/s of the sandbox's POST /customers/add-update, per server stack.

    .venv/bin/python bench/sandbox_throughput.py                 # all stacks, 3 rounds of 5 s
    .venv/bin/python bench/sandbox_throughput.py --stacks aiohttp-uvloop --db file

Each round starts every stack in its own process on a free loopback port, loads it from another
process for ``--duration`` seconds at ``--concurrency`` connections with ~250-byte bodies (a mix
of creates and updates), and stops it. Rounds interleave the stacks so background noise hits them
alike. Two numbers per run: requests/s, and requests per CPU-second of the server process (its
capacity with a core to itself, which moves much less than requests/s when other processes share
the machine). The load comes from ``wrk`` when it is installed (``apt-get install wrk``: it needs
little CPU), else from an aiohttp client process, which on 2 cores is itself the bottleneck.

Stacks: ``aiohttp-uvloop`` (what the sandbox runs), ``aiohttp-asyncio`` (``--no-uvloop``), and
``raw-uvloop``: a bare asyncio.Protocol prototype defined below, with the same validation, storage
and JSON but a minimal HTTP/1.1 parser, which shows what all of aiohttp costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
API_KEY = "bench-key"
MERCHANT_ID = "bench-merchant"
STACKS = ("aiohttp-uvloop", "aiohttp-asyncio", "raw-uvloop")
# customers cycle through this many ids: the first pass creates, later passes update
DISTINCT_IDS = 20_000
BODY = (
    '{"externalId":"CUST-%07d","firstName":"Johnathan","lastName":"Doe-Smithson",'
    '"email":"johnathan.doe-smithson.%07d@example.com","phoneNumber":"+14155550123",'
    '"active":true,"notificationOptions":{"notifyEmail":true,"notifyPhone":false}}'
)
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "{API_KEY}"
wrk.headers["x-merchant-id"] = "{MERCHANT_ID}"
local n = 0
request = function()
  n = n + 1
  local id = n % {DISTINCT_IDS}
  return wrk.format(nil, "/customers/add-update", nil, string.format('{BODY}', id, id))
end
"""
LISTENING = re.compile(r"listening on (http://\S+)")


def main() -> int:
    """Run the rounds and print one line per round and a summary per stack."""
    args = _parse_args()
    if args.serve_raw:
        return _serve_raw(args.db_path)
    if args.load:
        print(json.dumps(asyncio.run(_python_load(args.load, args.duration, args.concurrency))))
        return 0
    client = "wrk" if args.client == "auto" and shutil.which("wrk") else args.client
    client = "python" if client == "auto" else client
    print(f"client {client}, concurrency {args.concurrency}, {args.duration:g} s, db {args.db}")
    rates: dict[str, list[float]] = {stack: [] for stack in args.stacks}
    capacities: dict[str, list[float]] = {stack: [] for stack in args.stacks}
    for round_no in range(1, args.rounds + 1):
        for stack in args.stacks:
            rate, capacity = _measure(stack, client, args)
            rates[stack].append(rate)
            capacities[stack].append(capacity)
            print(
                f"round {round_no} {stack:16} {rate:6.0f} req/s {capacity:6.0f} req/cpu-s",
                flush=True,
            )
    for stack in args.stacks:
        print(
            f"{stack:16} req/s median {statistics.median(rates[stack]):6.0f}"
            f" best {max(rates[stack]):6.0f};"
            f" req per server cpu-s median {statistics.median(capacities[stack]):6.0f}"
        )
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stacks", type=lambda s: s.split(","), default=list(STACKS))
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--db", choices=("memory", "file"), default="memory")
    parser.add_argument("--serve-raw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db-path", help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    return parser.parse_args()


def _measure(stack: str, client: str, args: argparse.Namespace) -> tuple[float, float]:
    """Start ``stack``, load it, stop it: (requests/s, requests per CPU-second of the server).

    The second number is the server's capacity with a core to itself; unlike the first, it
    hardly moves when other processes compete for the CPU.
    """
    with tempfile.TemporaryDirectory() as tmp:
        db_file = str(Path(tmp) / "bench.db") if args.db == "file" else None
        process, url = _start(_server_command(stack, db_file))
        try:
            cpu_before = _cpu_seconds(process.pid)
            load = _wrk if client == "wrk" else _python_client
            count, errors, elapsed = load(url, args.duration, args.concurrency)
            cpu_used = _cpu_seconds(process.pid) - cpu_before
        finally:
            process.terminate()
            process.wait(10)
    if errors:
        raise SystemExit(f"{stack}: {errors} answers were not 2xx")
    return count / elapsed, count / cpu_used


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_command(stack: str, db_file: str | None) -> list[str]:
    if stack == "raw-uvloop":
        return [sys.executable, __file__, "--serve-raw"] + (
            ["--db-path", db_file] if db_file else []
        )
    command = [sys.executable, "-m", "customer_import.sandbox", "--port", "0"]
    command += ["--api-key", API_KEY, "--merchant-id", MERCHANT_ID]
    command += ["--no-uvloop"] if stack == "aiohttp-asyncio" else []
    return command + (["--db", db_file] if db_file else [])


def _start(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a server process and wait (10 s at most) for its "listening on" line."""
    python_path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(SRC)]))
    env = {**os.environ, "PYTHONPATH": python_path}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        match = LISTENING.search(process.stdout.readline())
        if match:
            return process, match.group(1)
    process.kill()
    raise SystemExit(f"server did not start: {command}")


def _wrk(url: str, duration: float, concurrency: int) -> tuple[int, int, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        command = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "-s", script.name, url]
        output = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=duration + 30
        ).stdout
    count = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    seconds = float(re.search(r"requests in ([\d.]+)s", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return count, int(errors.group(1)) if errors else 0, seconds


def _python_client(url: str, duration: float, concurrency: int) -> tuple[int, int, float]:
    """The same load from an aiohttp client in its own process (when wrk is not installed)."""
    command = [sys.executable, __file__, "--load", url, "--duration", str(duration)]
    command += ["--concurrency", str(concurrency)]
    answer = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 30
    )
    result = json.loads(answer.stdout)
    return result["count"], result["errors"], result["seconds"]


async def _python_load(url: str, duration: float, concurrency: int) -> dict[str, float]:
    import aiohttp

    statuses: Counter[int] = Counter()
    headers = {"x-api-key": API_KEY, "x-merchant-id": MERCHANT_ID}
    headers["content-type"] = "application/json"
    deadline = time.monotonic() + duration

    async def worker(session: aiohttp.ClientSession, offset: int) -> None:
        n = offset
        while time.monotonic() < deadline:
            n += concurrency
            body = (BODY % (n % DISTINCT_IDS, n % DISTINCT_IDS)).encode()
            async with session.post(url + "/customers/add-update", data=body) as response:
                await response.read()
                statuses[response.status] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    started = time.monotonic()
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:
        await asyncio.gather(*(worker(session, i) for i in range(concurrency)))
    count = sum(statuses.values())
    errors = count - sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {"count": count, "errors": errors, "seconds": time.monotonic() - started}


# --- the raw asyncio.Protocol prototype (compared, not used) ---


def _serve_raw(db_path: str | None) -> int:
    import uvloop

    from customer_import.sandbox.app import validate_customer
    from customer_import.sandbox.storage import CustomerStore

    store = CustomerStore(Path(db_path) if db_path else None)
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def handle(body: bytes) -> tuple[str, bytes]:
        customer = json.loads(body)
        if validate_customer(customer):
            return "400 Bad Request", b"{}"
        result = store.upsert(MERCHANT_ID, customer)
        return ("201 Created" if result.created else "200 OK"), encode(result.customer).encode()

    class Http(asyncio.Protocol):
        """Keep-alive HTTP/1.1 with Content-Length bodies only: just enough for this bench."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                head = self.buffer[:end].decode("latin-1").split("\r\n")
                fields = dict(line.split(": ", 1) for line in head[1:])
                headers = {name.lower(): value for name, value in fields.items()}
                length = int(headers.get("content-length", 0))
                if len(self.buffer) < end + 4 + length:
                    return
                body = self.buffer[end + 4 : end + 4 + length]
                self.buffer = self.buffer[end + 4 + length :]
                authorized = headers.get("x-api-key") == API_KEY
                status, payload = handle(body) if authorized else ("401 Unauthorized", b"{}")
                self.transport.write(  # type: ignore[attr-defined]
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        print(f"raw prototype listening on http://127.0.0.1:{port}", flush=True)
        await server.serve_forever()

    uvloop.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
