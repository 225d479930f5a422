"""Instructions a request, counted by callgrind: the job's Sender against a bare loop of its stack.

    .venv/bin/python bench/instructions.py                    # 2,000 requests, about 5 minutes
    .venv/bin/python bench/instructions.py --stacks aiohttp,httpx-transport,sender

Each stack's bare loop (``bare_loops.py``) runs under ``valgrind --tool=callgrind`` against a
fresh sandbox (which runs outside valgrind), once over N bodies and once over 2N; the
difference divided by N is its instructions a request, start-up left out. Unlike seconds,
instructions hardly move with the machine's load (repeats agree to about 0.3 %), so a change
of 1 % in the send path shows, where the send-path rates move by ±8 % a round. Under callgrind
a loop runs about 50 times slower and the sandbox's answers are always waiting, so what it
counts is the client's own work. valgrind is not a project dependency; it is on this
project's machines (``--valgrind PATH`` otherwise).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path
from typing import Final

from common import BENCH_DIR, child_env, log, run_child, sandbox, work_dir
from data import request_bodies, write_bodies

COLLECTED: Final = re.compile(r"Collected : (\d+)")


def instructions(valgrind: str, stack: str, bodies: Path) -> int:
    """Instructions of one loop over every body in ``bodies``, start-up included."""
    with sandbox() as server:
        command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        command += [sys.executable, str(BENCH_DIR / "bare_loops.py"), "--stack", stack]
        command += ["--url", server.base_url, "--bodies", str(bodies)]
        command += ["--duration", "100000", "--warmup", "0"]  # to the end of the bodies
        child = run_child(command, timeout_s=1800, env=child_env())
    found = COLLECTED.search(child.stderr)
    if child.returncode != 0 or found is None:
        raise RuntimeError(f"{stack} under callgrind failed:\n{child.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default="httpx-transport,sender")
    parser.add_argument("--requests", type=int, default=2_000, help="N: runs of N and 2N")
    parser.add_argument("--valgrind", default=shutil.which("valgrind"))
    args = parser.parse_args()
    stacks = [stack for stack in args.stacks.split(",") if stack]
    if not stacks:
        parser.error("--stacks names no stack")
    if not args.valgrind:
        parser.error("valgrind not found: install it (Debian: valgrind) or pass --valgrind")
    n = args.requests
    with work_dir() as work:
        # Bodies come only from the valid records (about 98 %): 3N records leave 2N to spare.
        bodies = request_bodies(3 * n)[: 2 * n]
        assert len(bodies) == 2 * n, "fewer valid records than expected"
        once = write_bodies(work / "once.bodies", bodies[:n])
        twice = write_bodies(work / "twice.bodies", bodies)
        per_request: dict[str, float] = {}
        for stack in stacks:
            counts = [instructions(args.valgrind, stack, path) for path in (once, twice)]
            per_request[stack] = (counts[1] - counts[0]) / n
            log(f"  {stack}: {per_request[stack]:,.0f} instructions a request")
    first = next(iter(per_request.values()))
    print(f"| stack | instructions a request | vs {next(iter(per_request))} |")
    print("|---|---|---|")
    for stack, count in per_request.items():
        print(f"| {stack} | {count:,.0f} | {count / first:.3f} |")


if __name__ == "__main__":
    main()
