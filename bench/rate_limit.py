"""Unknown rate limit: a sandbox limiting to 300 requests/s, the job told nothing (target 4).

The sandbox answers 429 with Retry-After beyond its limit (a token bucket holding one second's
worth). While the job runs, the sandbox's counters are read every 0.25 s, so the rate the job
settles at can be taken between 10 % and 90 % of its successful requests (start-up, the first
second's burst allowance and the tail are left out); the overall rate is reported beside it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from common import JobRun, Row, at_least, below, log, rate, run_job, sandbox
from customer_import.sandbox.testing import SandboxServer
from data import write_csv, write_job

LIMIT: Final = 300.0
POLL_S: Final = 0.25


@dataclass(frozen=True, slots=True)
class Plan:
    records: int = 6_000
    concurrency: int = 64
    timeout_s: float = 180.0


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    ok: int
    limited: int


def _sample(server: SandboxServer, started: float) -> Sample:
    statuses = server.stats()["by_status"]
    ok = sum(n for status, n in statuses.items() if status.startswith("2"))
    return Sample(time.monotonic() - started, ok, int(statuses.get("429", 0)))


def settled_rate(samples: list[Sample]) -> float | None:
    """Successful requests/s between 10 % and 90 % of the final count."""
    if not samples or samples[-1].ok == 0:
        return None
    final = samples[-1].ok
    low = next(s for s in samples if s.ok >= 0.1 * final)
    high = next(s for s in samples if s.ok >= 0.9 * final)
    return (high.ok - low.ok) / (high.at - low.at) if high.at > low.at else None


def measure(plan: Plan, work: Path) -> tuple[JobRun, list[Sample], dict[str, Any]]:
    csv = write_csv(work / "rate.csv", plan.records)
    job = write_job(work / "rate.toml", csv, work / "out", concurrency=plan.concurrency)
    with sandbox(rate_limit=LIMIT) as server, ThreadPoolExecutor(1) as pool:
        args = ["--base-url", server.base_url, "--concurrency", str(plan.concurrency)]
        started = time.monotonic()
        future = pool.submit(
            run_job, job, args, out_dir=work / "out-rate", timeout_s=plan.timeout_s
        )
        samples = []
        while not future.done():
            samples.append(_sample(server, started))
            time.sleep(POLL_S)
        samples.append(_sample(server, started))
        return future.result(), samples, server.stats()


def run(plan: Plan, work: Path) -> list[Row]:
    log(f"rate limit: {plan.records:,} records against a {LIMIT:.0f}/s sandbox")
    job, samples, stats = measure(plan, work)
    summary = job.summary
    total = int(stats["requests_total"])
    limited = int(stats["by_status"].get("429", 0))
    share = limited / total if total else None
    settled = settled_rate(samples)
    overall = samples[-1].ok / float(summary["duration_s"])
    log(f"  settled {settled}, overall {overall:.0f}/s, 429 share {share}")
    name = f"4 unknown rate limit {LIMIT:.0f}/s, {plan.records:,} records"
    details = {
        "status": summary["status"],
        "settled_per_s": settled,
        "overall_per_s": round(overall, 1),
        "duration_s": summary["duration_s"],
        "sandbox": stats,
        "job_requests": summary["requests"],
        "job_rate_limited": summary["rate_limited"],
        "timed_out": job.child.timed_out,
    }
    ratio = None if settled is None else settled / LIMIT
    return [
        Row(
            f"{name}: settled rate",
            f"{rate(settled or 0)} settled, {rate(overall)} overall",
            f"limit {rate(LIMIT)}",
            ratio,
            ">= 0.95",
            at_least(ratio, 0.95),
            details,
        ),
        Row(
            f"{name}: 429 answers",
            f"{limited:,} of {total:,} requests = {100 * (share or 0):.1f} %",
            f"job counted {summary['rate_limited']:,} of {summary['requests']:,}",
            share,
            "< 0.02",
            below(share, 0.02),
        ),
    ]
