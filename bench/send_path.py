"""Send path: the full job against bare client loops, on a fast sandbox and a 50 ms one.

Issue 7 targets 1 (send path), 2 (both cores), 3 (latency-bound), 7 (pipelining) and
8 (naive baseline). Every measurement gets a fresh in-memory sandbox, so every request is a
create, for the job and the loops alike. Rounds interleave the stacks and the job, so load from
other processes on the machine falls on all of them; medians are reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bare_loops import LoopResult
from common import (
    BENCH_DIR,
    JobRun,
    Row,
    at_least,
    child_env,
    cpu,
    log,
    median,
    rate,
    run_child,
    run_job,
    sandbox,
    spread,
)
from data import request_bodies, write_bodies, write_csv, write_job

# Each round measures the loops in this order, then the job: the job's own stack comes last,
# next to the job in time, so a round's ratio compares two runs under the same background load.
FAST_STACKS: Final = ("aiohttp", "httpx-aiohttp", "httpx", "sender", "httpx-transport")
SLOW_STACKS: Final = ("sender", "httpx-transport", "aiohttp")
SLOW_LATENCY_MS: Final = 50.0
SAME_STACK: Final = "httpx-transport"  # target 1's baseline: the job's own client stack
LABELS: Final = {
    "aiohttp": "bare aiohttp",
    "httpx-transport": "bare httpx request + aiohttp transport",
    "httpx-aiohttp": "bare httpx.AsyncClient + aiohttp transport",
    "httpx": "bare httpx default",
    "sender": "job's Sender alone",
    "sequential": "sequential httpx",
}
ISSUE_FIGURES: Final = {
    "aiohttp": "issue: 5,000-5,700/s, 0.17-0.20 ms",
    "httpx-transport": "-",
    "httpx-aiohttp": "issue: ~1,900/s, ~0.5 ms",
    "httpx": "issue: 190-530/s, 2-5 ms",
    "sender": "-",
}


@dataclass(frozen=True, slots=True)
class Plan:
    records: int = 50_000
    concurrency: int = 64
    rounds: int = 3  # the 50 ms scenario's rounds of loops
    job_rounds: int = 5
    """Rounds without latency, each ending in a job run, and rounds of target 2: targets 1 and
    2 are ratios of two noisy rates, the closest of the targets to their goals."""
    slow_job_rounds: int = 1  # the 50 ms scenario: each job run takes about 45 s
    duration_s: float = 3.0
    whole_s: float = 120.0
    """Cap of the no-latency same-stack loop, which goes on to the end of the bodies the job
    sends (about 17 s): over as long as the job, a slow spell of the machine weighs on both
    alike."""
    warmup_s: float = 0.5
    sequential_s: float = 10.0
    job_timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Inputs:
    csv: Path
    bodies: Path
    job: Path
    work: Path


@dataclass(slots=True)
class Scenario:
    """Everything measured against one kind of sandbox."""

    latency_ms: float
    loops: dict[str, list[LoopResult]] = field(default_factory=dict)
    jobs: list[JobRun] = field(default_factory=list)
    sequential: LoopResult | None = None
    workers: list[JobRun] = field(default_factory=list)
    workers_baselines: list[LoopResult] = field(default_factory=list)  # aiohttp, just before

    def loop_rate(self, stack: str) -> float:
        return median([r.per_s for r in self.loops.get(stack, [])])

    def loop_cpu(self, stack: str) -> float:
        return median([r.cpu_ms for r in self.loops.get(stack, [])])

    def job_rate(self) -> float:
        return median([j.requests_per_s for j in self.jobs])

    def round_ratios(self, stack: str) -> list[float]:
        """Job ÷ loop, per round: the job run and the loop measured in the same round."""
        loops = self.loops.get(stack, [])
        return [j.requests_per_s / r.per_s for j, r in zip(self.jobs, loops, strict=False)]

    def ratio(self, stack: str) -> float:
        """The median of the per-round ratios: a slow spell of the machine that falls on one
        round moves both runs of that round, not a whole side of the comparison."""
        return median(self.round_ratios(stack))

    def job_cpu(self) -> float:
        return median([j.cpu_ms_per_request for j in self.jobs])


def prepare(plan: Plan, work: Path) -> Inputs:
    """The export, the bodies the job should send for it, and the job file."""
    csv = write_csv(work / "send.csv", plan.records)
    bodies = write_bodies(work / "send.bodies", request_bodies(plan.records))
    job = write_job(work / "send.toml", csv, work / "out", concurrency=plan.concurrency)
    return Inputs(csv, bodies, job, work)


def measure_loop(
    stack: str, inputs: Inputs, latency_ms: float, plan: Plan, whole: bool | None = None
) -> LoopResult:
    """One bare loop in its own process against a fresh sandbox; ``whole``: on to the end of
    the bodies (by default target 1's same-stack loop without latency), as a job sends them."""
    duration = plan.sequential_s if stack == "sequential" else plan.duration_s
    if whole or (whole is None and stack == SAME_STACK and not latency_ms):
        duration = plan.whole_s
    with sandbox(latency_ms=latency_ms or None) as server:
        command = [sys.executable, str(BENCH_DIR / "bare_loops.py"), "--stack", stack]
        command += ["--url", server.base_url, "--bodies", str(inputs.bodies)]
        command += ["--concurrency", str(plan.concurrency), "--duration", str(duration)]
        command += ["--warmup", str(plan.warmup_s)]
        child = run_child(command, timeout_s=duration + 60, env=child_env())
    if child.returncode != 0:
        raise RuntimeError(f"bare loop {stack} failed:\n{child.stderr[-2000:]}")
    result = LoopResult(**json.loads(child.stdout))
    log(f"  {stack:14} {latency_ms:3.0f} ms: {rate(result.per_s)}, {cpu(result.cpu_ms)}")
    return result


def measure_job(
    inputs: Inputs, latency_ms: float, plan: Plan, label: str, extra: Sequence[str] = ()
) -> JobRun:
    """The whole job in a child process against a fresh sandbox."""
    with sandbox(latency_ms=latency_ms or None) as server:
        args = ["--base-url", server.base_url, "--concurrency", str(plan.concurrency), *extra]
        out = inputs.work / f"out-{label}"
        job = run_job(inputs.job, args, out_dir=out, timeout_s=plan.job_timeout_s)
        job.summary["sandbox_statuses"] = server.stats()["by_status"]
    log(
        f"  job {label}: {rate(job.requests_per_s)} ({job.summary['status']}, "
        f"{job.summary['requests']} requests in {job.summary['duration_s']} s), "
        f"{cpu(job.cpu_ms_per_request)}"
    )
    return job


def measure_scenario(
    inputs: Inputs,
    plan: Plan,
    latency_ms: float,
    stacks: Sequence[str],
    rounds: int,
    job_rounds: int,
) -> Scenario:
    scenario = Scenario(latency_ms)
    for number in range(rounds):
        log(f"send path, {latency_ms:.0f} ms sandbox, round {number + 1}/{rounds}")
        for stack in stacks:
            results = scenario.loops.setdefault(stack, [])
            try:
                results.append(measure_loop(stack, inputs, latency_ms, plan))
            except RuntimeError as exc:  # e.g. the Sender's API changed: report the rest
                log(f"  {stack} unavailable: {exc}")
        if number < job_rounds:
            label = f"{latency_ms:.0f}ms-{number + 1}"
            scenario.jobs.append(measure_job(inputs, latency_ms, plan, label))
    scenario.sequential = measure_loop("sequential", inputs, latency_ms, plan)
    return scenario


def measure_workers(inputs: Inputs, plan: Plan, fast: Scenario) -> None:
    """Target 2 in rounds of two: a bare aiohttp loop over the whole of the bodies, then the
    job with ``--workers 2``. One pair could fall on a slow spell of the machine."""
    for number in range(plan.job_rounds):
        log(f"both cores, round {number + 1}/{plan.job_rounds}")
        try:
            baseline = measure_loop("aiohttp", inputs, 0.0, plan, whole=True)
        except RuntimeError as exc:  # report the other pairs
            log(f"  aiohttp unavailable: {exc}")
            continue
        fast.workers_baselines.append(baseline)
        label = f"workers-2-{number + 1}"
        fast.workers.append(measure_job(inputs, 0.0, plan, label, ["--workers", "2"]))


def has_option(option: str) -> bool:
    """Whether ``customer-import run`` knows ``option`` yet (issue 7's --workers, --shard)."""
    command = [sys.executable, "-m", "customer_import", "run", "--help"]
    result = subprocess.run(command, capture_output=True, text=True, env=child_env(), check=False)
    return option in result.stdout


def run(plan: Plan, work: Path) -> list[Row]:
    log(f"send path: generating {plan.records:,} records")
    inputs = prepare(plan, work)
    fast = measure_scenario(inputs, plan, 0.0, FAST_STACKS, plan.job_rounds, plan.job_rounds)
    if has_option("--workers"):
        measure_workers(inputs, plan, fast)
    slow = measure_scenario(
        inputs, plan, SLOW_LATENCY_MS, SLOW_STACKS, plan.rounds, plan.slow_job_rounds
    )
    rows = fast_rows(fast, plan) + workers_rows(fast, plan) + [shard_row()]
    return rows + slow_rows(slow, plan)


def shard_row() -> Row:
    """Issue 7's scale-out has no throughput goal of its own: say whether it exists."""
    available = has_option("--shard")
    return Row(
        "scale-out: --shard K/N",
        "available (one shard's speed is row 1's: not measured)"
        if available
        else "NOT IMPLEMENTED YET (no --shard option)",
        target="-",
    )


def _job_figure(scenario: Scenario) -> str:
    rows = median([float(j.summary["rows_per_s"]) for j in scenario.jobs])
    return f"job {rate(scenario.job_rate())} ({rate(rows)} records), {cpu(scenario.job_cpu())}"


def _loop_figure(scenario: Scenario, stack: str) -> str:
    if not scenario.loops.get(stack):
        return f"{LABELS[stack]} unavailable (see the log)"
    return f"{LABELS[stack]} {rate(scenario.loop_rate(stack))}, {cpu(scenario.loop_cpu(stack))}"


def _ratio(figure: float, baseline: float) -> float | None:
    ratio = figure / baseline if baseline else float("nan")
    return None if ratio != ratio else ratio


def _versus(name: str, scenario: Scenario, stack: str, target: str, goal: float | None) -> Row:
    ratio = _ratio(scenario.ratio(stack), 1.0)
    return Row(
        name,
        _job_figure(scenario),
        _loop_figure(scenario, stack),
        ratio,
        target,
        at_least(ratio, goal) if goal is not None else None,
        details=_details(scenario, stack),
    )


def _details(scenario: Scenario, stack: str) -> dict[str, object]:
    loops = scenario.loops.get(stack, [])
    return {
        "latency_ms": scenario.latency_ms,
        "job_requests_per_s": [round(j.requests_per_s, 1) for j in scenario.jobs],
        "job_cpu_ms_per_request": [round(j.cpu_ms_per_request, 3) for j in scenario.jobs],
        "job_summaries": [_summary_excerpt(j) for j in scenario.jobs],
        f"{stack}_per_s": [round(r.per_s, 1) for r in loops],
        f"{stack}_cpu_ms": [round(r.cpu_ms, 3) for r in loops],
        f"{stack}_spread": round(spread([r.per_s for r in loops]), 3),
        "round_ratios": [round(r, 3) for r in scenario.round_ratios(stack)],
    }


def _summary_excerpt(job: JobRun) -> dict[str, object]:
    keys = ("status", "rows", "requests", "rejected", "duration_s", "rows_per_s", "latency_ms")
    excerpt = {k: job.summary.get(k) for k in keys}
    excerpt.update(
        wall_s=round(job.child.wall_s, 2),
        cpu_s=round(job.child.cpu_s, 2),
        max_rss_mb=round(job.child.max_rss_mb),
        sandbox_statuses=job.summary.get("sandbox_statuses"),
    )
    return excerpt


def fast_rows(fast: Scenario, plan: Plan) -> list[Row]:
    name = f"1 send path, C={plan.concurrency}, {plan.records:,} records"
    rows = [
        _versus(f"{name}: job vs same stack", fast, SAME_STACK, ">= 0.85", 0.85),
        _versus(f"{name}: job vs httpx.AsyncClient", fast, "httpx-aiohttp", "report", None),
        _versus(f"{name}: job vs httpx default", fast, "httpx", ">= 5", 5.0),
        _versus(f"{name}: job vs aiohttp", fast, "aiohttp", "report", None),
        _versus(f"{name}: job vs its Sender alone", fast, "sender", "report", None),
        cpu_row(f"{name}: client CPU, job vs same stack", fast, SAME_STACK),
    ]
    for stack in FAST_STACKS:
        loops = fast.loops[stack]
        rows.append(
            Row(
                f"  bare loop, C={plan.concurrency}: {LABELS[stack]}",
                _loop_figure(fast, stack),
                ISSUE_FIGURES[stack],
                details={
                    "per_s": [round(r.per_s, 1) for r in loops],
                    "cpu_ms": [round(r.cpu_ms, 3) for r in loops],
                    "spread": round(spread([r.per_s for r in loops]), 3),
                    "statuses": [r.statuses for r in loops],
                },
            )
        )
    return rows


def cpu_row(name: str, scenario: Scenario, stack: str) -> Row:
    """Requests per client CPU-second: hardly moves when other processes share the machine,
    unlike requests/s, so it tells whether a gap in row 1 is the job's cost or the load."""
    job, bare = 1000 / scenario.job_cpu(), 1000 / scenario.loop_cpu(stack)
    return Row(
        name,
        f"job {job:,.0f} requests per CPU-second",
        f"{LABELS[stack]} {bare:,.0f} per CPU-second",
        _ratio(job, bare),
        "report (load-proof view of row 1)",
    )


def workers_rows(fast: Scenario, plan: Plan) -> list[Row]:
    if not fast.workers:
        return [
            Row(
                "2 both cores: --workers 2 vs bare aiohttp",
                "NOT IMPLEMENTED YET (no --workers option)",
                _loop_figure(fast, "aiohttp"),
                target=">= 0.7",
            )
        ]
    jobs, baselines = fast.workers, fast.workers_baselines
    pairs = zip(jobs, baselines, strict=True)
    ratios = [j.requests_per_s / b.per_s for j, b in pairs if b.per_s]
    ratio = _ratio(median(ratios), 1.0)
    job_rate = median([j.requests_per_s for j in jobs])
    job_cpu = median([j.cpu_ms_per_request for j in jobs])
    return [
        Row(
            "2 both cores: --workers 2 vs bare aiohttp",
            f"job --workers 2 {rate(job_rate)}, {cpu(job_cpu)}",
            f"bare aiohttp just before each {rate(median([b.per_s for b in baselines]))}, "
            f"{cpu(median([b.cpu_ms for b in baselines]))}",
            ratio,
            ">= 0.7",
            at_least(ratio, 0.7),
            details={
                "round_ratios": [round(r, 3) for r in ratios],
                "aiohttp_per_s": [round(b.per_s, 1) for b in baselines],
                "summaries": [_summary_excerpt(j) for j in jobs],
            },
        )
    ]


def slow_rows(slow: Scenario, plan: Plan) -> list[Row]:
    ideal = plan.concurrency * 1000 / slow.latency_ms
    at = f"{slow.latency_ms:.0f} ms sandbox, C={plan.concurrency}"
    aiohttp_rate = slow.loop_rate("aiohttp")
    assert slow.sequential is not None
    naive = slow.sequential.per_s
    return [
        _versus(f"3 latency-bound, {at}: job vs aiohttp", slow, "aiohttp", ">= 0.9", 0.9),
        Row(
            f"3 latency-bound, {at}: bare aiohttp vs ideal",
            _loop_figure(slow, "aiohttp"),
            f"ideal {rate(ideal)}",
            _ratio(aiohttp_rate, ideal),
            "report (issue: 0.8-0.9)",
        ),
        _versus(f"7 pipelining, {at}: job vs same stack", slow, "httpx-transport", ">= 0.9", 0.9),
        _versus(f"7 pipelining, {at}: job vs its Sender alone", slow, "sender", ">= 0.9", 0.9),
        Row(
            f"8 naive baseline, {at}: job vs sequential loop",
            _job_figure(slow),
            f"sequential httpx {rate(naive)}, {cpu(slow.sequential.cpu_ms)}",
            _ratio(slow.job_rate(), naive),
            "report (issue: 18-19/s)",
            details={"sequential": slow.sequential.statuses},
        ),
    ]
