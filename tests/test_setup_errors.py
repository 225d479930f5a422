"""Setup errors end a run before anything is sent, with exit 2 and one line that says what to
fix: never a traceback, never exit 1 (which means "completed with rejects")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from customer_import.contracts import ExitCode
from tests.conftest import API_KEY, CREDENTIALS, run_main, write_csv, write_job

LINES = ["S-1,Ada,Lovelace,,,,", "S-2,Grace,Hopper,,,,"]


def _job(tmp_path: Path, **kwargs: str) -> Path:
    return write_job(tmp_path, write_csv(tmp_path / "in.csv", *LINES), **kwargs)


def _assert_one_line_exit_2(stdout: str, stderr: str, code: int, *expected: str) -> None:
    assert code == ExitCode.NOTHING_DONE, stdout + stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    for text in expected:
        assert text in stderr


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_output_folder_that_cannot_be_a_folder_is_exit_2(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder\n")
    out = blocker if where == "a file" else blocker / "out"

    result = run_main("run", str(_job(tmp_path)), "--dry-run", "--out", str(out), "--no-progress")

    _assert_one_line_exit_2(
        result.stdout, result.stderr, result.returncode, "cannot write to the output folder"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_output_folder_is_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o500)

    result = run_main("run", str(_job(tmp_path)), "--dry-run", "--out", str(out), "--no-progress")

    _assert_one_line_exit_2(result.stdout, result.stderr, result.returncode, "Permission denied")


@pytest.mark.parametrize(
    "key",
    [
        f"{API_KEY[:4]}\r{API_KEY[4:]}",
        f"{API_KEY}\r\nX-Injected: 1",
        f"{API_KEY}é",
        f"{API_KEY} {API_KEY}",
    ],
)
def test_an_api_key_that_cannot_be_a_header_is_exit_2_and_never_shown(
    tmp_path: Path, key: str
) -> None:
    env = {**CREDENTIALS, "CUSTOMERS_API_KEY": key}

    result = run_main("run", str(_job(tmp_path)), "--no-progress", env=env)

    _assert_one_line_exit_2(
        result.stdout, result.stderr, result.returncode, "CUSTOMERS_API_KEY", "HTTP header"
    )
    assert API_KEY not in result.stdout + result.stderr


def test_missing_credentials_name_every_missing_variable(tmp_path: Path) -> None:
    result = run_main("run", str(_job(tmp_path)), "--no-progress", env={})

    _assert_one_line_exit_2(
        result.stdout,
        result.stderr,
        result.returncode,
        "CUSTOMERS_API_KEY and CUSTOMERS_MERCHANT_ID",
    )


@pytest.mark.parametrize("flag", [False, True])
def test_credentials_in_the_base_url_are_refused_and_never_written(
    tmp_path: Path, flag: bool
) -> None:
    url = "http://alice:S3cret-pass@127.0.0.1:9"
    job = _job(tmp_path) if flag else _job(tmp_path, base_url=url)
    args = ["--base-url", url] if flag else []

    result = run_main("run", str(job), "--no-progress", *args, env=CREDENTIALS)

    _assert_one_line_exit_2(
        result.stdout, result.stderr, result.returncode, "user name or password"
    )
    assert "S3cret" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()  # nothing written, so nowhere to leak it
