"""The circuit breaker's settings: read from the job file's [api] section."""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_import.config import ApiConfig, load_job
from customer_import.errors import ConfigError

MINIMAL = 'name = "j"\n[mapping]\nexternalId = "id"\nfirstName = "first"\n'


def test_the_breaker_opens_after_50_failures_and_probes_every_5_s_by_default() -> None:
    api = ApiConfig()
    assert (api.breaker_failures, api.breaker_probe_s) == (50, 5.0)


def test_the_job_file_sets_the_breakers_threshold_and_probe_interval(tmp_path: Path) -> None:
    job_file = tmp_path / "job.toml"
    job_file.write_text(MINIMAL + "[api]\nbreaker_failures = 8\nbreaker_probe_s = 0.5\n")

    api = load_job(job_file).api

    assert (api.breaker_failures, api.breaker_probe_s) == (8, 0.5)


@pytest.mark.parametrize(
    "line", ["breaker_failures = 0", "breaker_failures = -3", "breaker_probe_s = 0"]
)
def test_breaker_settings_must_be_positive(tmp_path: Path, line: str) -> None:
    job_file = tmp_path / "job.toml"
    job_file.write_text(MINIMAL + f"[api]\n{line}\n")

    with pytest.raises(ConfigError, match=rf"api\.{line.split()[0]}: .*greater than 0"):
        load_job(job_file)
