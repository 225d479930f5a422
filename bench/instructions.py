"""Instructions a request, counted by callgrind: the job, its Sender, bare loops of its stack.

    .venv/bin/python bench/instructions.py                    # 2,000 requests, about 5 minutes
    .venv/bin/python bench/instructions.py --stacks aiohttp,httpx-transport,sender
    .venv/bin/python bench/instructions.py --stacks httpx-transport,job --requests 1000

Each stack's bare loop (``bare_loops.py``) runs under ``valgrind --tool=callgrind`` against a
fresh sandbox (which runs outside valgrind), once over N bodies and once over 2N; the
difference divided by N is its instructions a request, start-up left out. Unlike seconds,
instructions hardly move with the machine's load (repeats agree to about 0.3 %), so a change
of 1 % in the send path shows, where the send-path rates move by ±8 % a round. Under callgrind
a loop runs about 50 times slower and the sandbox's answers are always waiting, so what it
counts is the client's own work. valgrind is not a project dependency; it is on this
project's machines (``--valgrind PATH`` otherwise).

The ``job`` stack is the whole job (``customer-import run``, as the send benchmark runs it)
over generated exports of N and 2N records. The job also reads and validates its export,
which no bare loop does, so a dry run of the same export is counted too and taken away: what
is left, over the requests sent, is the send path's instructions a request (the Sender, the
recording of every outcome, the journal's commits), the figure to set beside the bare loop of
its stack. Its bodies are the loops' own (the generated export's valid records).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Final

from common import BENCH_DIR, child_env, log, run_child, sandbox, work_dir
from data import request_bodies, write_bodies, write_csv, write_job

COLLECTED: Final = re.compile(r"Collected : (\d+)")
JOB_ENDED: Final = (0, 1)  # completed; completed with rejects (the generated invalid records)


def instructions(valgrind: str, stack: str, bodies: Path) -> int:
    """Instructions of one loop over every body in ``bodies``, start-up included."""
    with sandbox() as server:
        command = [sys.executable, str(BENCH_DIR / "bare_loops.py"), "--stack", stack]
        command += ["--url", server.base_url, "--bodies", str(bodies)]
        command += ["--duration", "100000", "--warmup", "0"]  # to the end of the bodies
        return _callgrind(valgrind, command, stack)


def _callgrind(valgrind: str, command: list[str], what: str, ok: tuple[int, ...] = (0,)) -> int:
    """Instructions of ``command`` (every thread), start-up included; ``ok``: its exit codes
    that mean it ran to its end."""
    prefix = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    child = run_child([*prefix, *command], timeout_s=3600, env=child_env())
    found = COLLECTED.search(child.stderr)
    if child.returncode not in ok or found is None:
        raise RuntimeError(f"{what} under callgrind failed:\n{child.stderr[-2000:]}")
    return int(found.group(1))


def job_instructions(valgrind: str, job: Path, out: Path, dry_run: bool) -> tuple[int, int]:
    """Instructions of one job run over ``job``'s export, and the requests it sent."""
    command = [sys.executable, "-m", "customer_import", "run", str(job), "--no-progress"]
    command += ["--out", str(out), "--concurrency", "64"]
    if dry_run:
        return _callgrind(valgrind, [*command, "--dry-run"], "the dry run", JOB_ENDED), 0
    with sandbox() as server:
        command += ["--base-url", server.base_url]
        count = _callgrind(valgrind, command, "the job", JOB_ENDED)
    summary = json.loads((out / "summary.json").read_text())
    if summary["status"] != "completed":
        raise RuntimeError(f"the job under callgrind ended {summary['status']}")
    return count, int(summary["requests"])


def job_per_request(valgrind: str, work: Path, n: int) -> float:
    """(job - dry run) over 2N records less the same over N, a request sent."""
    sends, requests = [], []
    for size in (n, 2 * n):
        csv = write_csv(work / f"job-{size}.csv", size)
        job = write_job(work / f"job-{size}.toml", csv, work / "out")
        sent, count = job_instructions(valgrind, job, work / f"out-{size}", dry_run=False)
        dry, _ = job_instructions(valgrind, job, work / f"dry-{size}", dry_run=True)
        log(f"  job over {size:,} records: {sent:,} - {dry:,} (dry run), {count:,} requests")
        sends.append(sent - dry)
        requests.append(count)
    return (sends[1] - sends[0]) / (requests[1] - requests[0])


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
            if stack == "job":
                per_request[stack] = job_per_request(args.valgrind, work, n)
            else:
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
