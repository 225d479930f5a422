"""``run_job``: the library's entry point. One process, or N processes (one shard each, their
outputs merged) when ``workers`` is above 1."""

from __future__ import annotations

from customer_import.config import JobConfig
from customer_import.contracts import RunReport
from customer_import.run import pipeline
from customer_import.run.options import RunOptions
from customer_import.scale.workers import run_in_workers


def run_job(
    job: JobConfig, options: RunOptions | None = None, *, workers: int = 1, log_format: str = "text"
) -> RunReport:
    """Run one job end to end; raises ConfigError/InputError before anything is sent.

    ``workers`` > 1: that many processes, each sending a shard of the records with its share of
    the job's concurrency and rate limit; ``log_format`` ("text" or "json") is then the
    workers' logging."""
    if workers == 1:
        return pipeline.run_job(job, options)
    return run_in_workers(job, options or RunOptions(), workers, log_format=log_format)
