"""Shared fixtures: a real sandbox on a free loopback port, job files in tmp_path, and the
conservation check every end-to-end test ends with."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from customer_import.config import JobConfig, load_job
from customer_import.contracts import RunReport
from customer_import.sandbox.testing import SandboxServer

API_KEY = "test-key-5f1c2e9a"
MERCHANT_ID = "test-merchant"
CREDENTIALS = {"CUSTOMERS_API_KEY": API_KEY, "CUSTOMERS_MERCHANT_ID": MERCHANT_ID}


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with no ``CUSTOMERS_*`` variable but those of ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOMERS_")}
    return {**clean, **(env or {})}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, with no ``CUSTOMERS_*`` variable but those of ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "customer_import", *args],
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_main(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``run_cli`` in this process: ``cli.main`` with the same environment rule and both
    streams captured. A child process costs about a second of CPU (its imports), so tests
    keep ``run_cli`` for what needs a process of its own: signals, kill -9, runs at once."""
    from customer_import import cli

    out, err = io.StringIO(), io.StringIO()
    with (
        _logging_kept(),
        mock.patch.dict(os.environ, cli_env(env), clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # --help, a usage error
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(
        ["customer-import", *args], code, out.getvalue(), err.getvalue()
    )


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """The command sets its loggers' handlers (to the stderr of the moment) and stops their
    propagation: put them back, so later tests' ``caplog`` sees the logs again."""
    names = ["customer_import", "py.warnings"]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in map(logging.getLogger, names)]
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, handlers, level, propagate in saved:
            logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


HEADER = "id,first,last,email,phone,status,email_opt_out"
MAPPING = """
[mapping]
externalId = "id"
firstName = "first"
lastName = "last"
email = "email"
phoneNumber = { column = "phone", default_region = "US" }
active = { column = "status", true = ["Active"], false = ["Inactive"] }
"notificationOptions.notifyEmail" = { column = "email_opt_out", invert = true }
"""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers a core. Most of the slow tests wait (on a sandbox's latency, a
    child process, a signal, a pacer), so a core serves a second worker while one waits."""
    return 2 * (os.cpu_count() or 1)


@pytest.fixture(autouse=True)
def _loggers_put_back() -> Iterator[None]:
    """A test that calls ``cli.main`` itself leaves the command's handlers on the stderr of
    the moment; put back, later tests neither write to a closed stream nor miss ``caplog``."""
    with _logging_kept():
        yield


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[SandboxServer]:
    """One sandbox without faults for the whole session (one per xdist worker): each start
    costs a fraction of a second, times dozens of tests. Use ``sandbox``, which resets it."""
    with SandboxServer(api_key=API_KEY, merchant_id=MERCHANT_ID) as server:
        yield server


@pytest.fixture
def sandbox(shared_sandbox: SandboxServer) -> SandboxServer:
    """The shared sandbox as a new one would be: no customers, zero stats, the key valid.

    A test that needs faults, a db file, a fixed port or other credentials, or that stops the
    server, starts its own ``SandboxServer`` instead.
    """
    if shared_sandbox.returncode is not None:
        raise RuntimeError(f"the shared sandbox stopped:\n{shared_sandbox.output}")
    shared_sandbox.reset()
    return shared_sandbox


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return dict(CREDENTIALS)


def write_csv(path: Path, *lines: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def write_job(
    folder: Path,
    source: Path,
    *,
    base_url: str = "http://127.0.0.1:9",
    extra: str = "",
    api: str = "",
    mapping: str = MAPPING,
) -> Path:
    """A job file for ``source``; fast retries so failure paths stay quick."""
    job = folder / "job.toml"
    text = f"""
        name = "test-job"
        {extra}
        [source]
        path = "{source.name if source.parent == folder else source.as_posix()}"
        {mapping}
        [api]
        base_url = "{base_url}"
        concurrency = 4
        max_attempts = 3
        backoff_base = 0.01
        backoff_max = 0.05
        {api}
        [output]
        dir = "out"
    """
    job.write_text(textwrap.dedent(text), encoding="utf-8")
    return job


def api_job(
    tmp_path: Path, lines: list[str], base_url: str, *, top: str = "", **api: object
) -> Path:
    """A job for ``lines`` (written to in.csv): 4 connections, fast retries; ``api`` overrides
    the [api] table, ``top`` adds top-level keys."""
    write_csv(tmp_path / "in.csv", *lines)
    settings = {
        "base_url": base_url,
        "concurrency": 4,
        "max_attempts": 3,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        **api,
    }
    table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    job = tmp_path / "job.toml"
    job.write_text(
        f'name = "test-job"\n{top}\n[source]\npath = "in.csv"\n{MAPPING}\n[api]\n{table}\n'
        '[output]\ndir = "out"\n',
        encoding="utf-8",
    )
    return job


def load(job_path: Path) -> JobConfig:
    return load_job(job_path)


def run_on(job: Path, sandbox: SandboxServer | None = None, **options: object) -> RunReport:
    """``job`` run in this process against ``sandbox``; without one, a dry run with no
    credentials."""
    from customer_import.run.options import RunOptions
    from customer_import.run.pipeline import run_job

    given: dict[str, object] = {"environ": CREDENTIALS}
    if sandbox is None:
        given.update(dry_run=True, environ={})
    else:
        given["base_url"] = sandbox.base_url
    return run_job(load(job), RunOptions(**{**given, **options}))  # type: ignore[arg-type]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def read_summary(out_dir: Path) -> dict[str, Any]:
    return json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))


def assert_conservation(out_dir: Path, records: int) -> None:
    """Every record 1..N once across results and rejects; the summary agrees with the files."""
    results = read_csv(out_dir / "results.csv")
    rejects = read_csv(out_dir / "rejects.csv")
    rows = [int(r["row"]) for r in results] + [int(r["_row"]) for r in rejects]
    assert sorted(rows) == list(range(1, records + 1))
    summary = read_summary(out_dir)
    assert summary["rows"] == records
    assert summary["rejected"] == len(rejects)
    statuses = [r["status"] for r in results]
    for status in ("created", "updated", "unchanged", "duplicate", "valid"):
        assert summary[status] == statuses.count(status), status
    assert sum(summary["rejected_by_stage"].values()) == len(rejects)
    counted = ("created", "updated", "unchanged", "duplicate", "valid", "rejected")
    assert sum(summary[k] for k in counted) == records
