"""Job files: every bundled job parses; mistakes are named precisely."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from customer_import.config import ApiConfig, load_job, read_credentials
from customer_import.errors import ConfigError

JOBS = sorted((Path(__file__).parent.parent / "jobs").glob("*.toml"))
MINIMAL = 'name = "j"\n[mapping]\nexternalId = "id"\nfirstName = "first"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("job_file", JOBS, ids=lambda p: p.name)
def test_every_bundled_job_file_parses(job_file: Path) -> None:
    job = load_job(job_file)
    assert isinstance(job.source.path, Path) and job.source.path.is_absolute()
    assert {"externalId", "firstName"} <= set(job.mapping.fields)


def test_the_four_documented_jobs_are_bundled() -> None:
    assert {p.name for p in JOBS} >= {
        "demo.toml",
        "nightly_sync.toml",
        "crm_migration.toml",
        "backfill.toml",
    }


def test_relative_paths_are_resolved_from_the_job_files_folder(tmp_path: Path) -> None:
    job = load_job(
        write(tmp_path, MINIMAL.replace("[mapping]", '[source]\npath = "in.csv"\n[mapping]'))
    )
    assert job.source.path == tmp_path / "in.csv"
    assert job.output.dir == tmp_path / "out" / "j"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "[source]\ncolour = 1\n", "unknown key 'source.colour'"),
        (MINIMAL.replace('name = "j"', 'name = "j"\nspeed = 3'), "unknown key 'speed'"),
        (MINIMAL + "[api]\ntimeout_s = 3\n", "unknown key 'api.timeout_s'"),
        (MINIMAL + 'nickname = "x"\n', "unknown target field 'nickname'"),
        (MINIMAL.replace('firstName = "first"\n', ""), "required field 'firstName'"),
        (MINIMAL + 'email = { column = "e", invert = true }\n', "boolean fields only"),
        (MINIMAL + 'lastName = { column = "n", default_region = "US" }\n', "phoneNumber only"),
        (MINIMAL + 'email = { column = "e", part = "first" }\n', "firstName and lastName only"),
        (
            MINIMAL + 'active = { column = "a", value = true }\n',
            "exactly one of 'column' or 'value'",
        ),
        (MINIMAL + "[api]\nconcurrency = 0\n", "api.concurrency"),
        ("name = 'j'\n[mapping\n", "not valid TOML"),
    ],
)
def test_configuration_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_job(write(tmp_path, text))


def test_missing_job_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="job file not found"):
        load_job(tmp_path / "nope.toml")


def test_credentials_come_from_the_named_variables_and_the_key_is_never_shown() -> None:
    api = ApiConfig(api_key_env="MY_KEY", merchant_id_env="MY_MERCHANT")
    credentials = read_credentials(api, {"MY_KEY": "s3cret-key", "MY_MERCHANT": "m-1"})
    assert (credentials.api_key, credentials.merchant_id) == ("s3cret-key", "m-1")
    assert "s3cret-key" not in repr(credentials) and "s3cret-key" not in str(credentials)
    with pytest.raises(ConfigError, match="set the environment variable MY_KEY"):
        read_credentials(api, {"MY_MERCHANT": "m-1"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "[api]\nconcurency = 3\n", "'api.concurency': did you mean 'concurrency'?"),
        (MINIMAL.replace('name = "j"', 'name = "j"\nmodes = 1'), "'modes': did you mean 'mode'?"),
        (MINIMAL + 'email = { colum = "e" }\n', "'mapping.email.colum': did you mean 'column'?"),
        (MINIMAL + 'emial = "e"\n', "unknown target field 'emial'; did you mean 'email'?"),
    ],
)
def test_a_misspelt_key_is_named_with_the_nearest_known_one(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_job(write(tmp_path, text))


def test_a_key_like_no_known_one_gets_no_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_job(write(tmp_path, MINIMAL + "[source]\ncolour = 1\n"))
    assert "did you mean" not in str(raised.value)
