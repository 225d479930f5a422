"""What a person watching a run sees: the progress bar's figures agree with each other."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx

from customer_import.console import ProgressRenderer
from customer_import.contracts import Progress, RecordStatus
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from tests.conftest import CREDENTIALS, load, write_csv, write_job


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bars_counts_are_those_of_its_own_position() -> None:
    """The counts beside the bar are drawn with the position they belong to, not a tick late."""
    terminal = Terminal()
    with ProgressRenderer(stream=terminal) as show:
        for done in (3, 7, 10):
            show(Progress(10, done, {RecordStatus.CREATED: done}, done))
            line = terminal.getvalue().split("\r")[-1]
            assert f"{done}/10" in line and f"created {done}" in line, line


def answers(*statuses: int) -> httpx.MockTransport:
    script: Iterator[int] = iter(statuses)

    def answer(request: httpx.Request) -> httpx.Response:  # a success echoes the customer
        return httpx.Response(next(script, statuses[-1]), content=request.content)

    return httpx.MockTransport(answer)


def test_a_resumes_progress_counts_earlier_outcomes_by_status_too(tmp_path: Path) -> None:
    lines = [f"C-{i},Ann,Lee,,,," for i in range(5)]
    job = load(write_job(tmp_path, write_csv(tmp_path / "in.csv", *lines)))
    first = run_job(
        job, RunOptions(environ=CREDENTIALS, concurrency=1, transport=answers(201, 201, 401))
    )
    assert (first.status, first.summary.count(RecordStatus.CREATED)) == ("aborted", 2)

    seen: list[Progress] = []
    options = RunOptions(
        environ=CREDENTIALS,
        concurrency=1,
        resume=True,
        transport=answers(201),
        progress=seen.append,
    )
    run_job(job, options)

    assert seen and all(sum(p.counts.values()) == p.done <= p.total == 5 for p in seen), seen
    assert seen[-1].counts == {RecordStatus.CREATED: 5}
