"""Run settings resolved from flags, environment and job file, in that order of precedence."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from customer_import.config import JobConfig
from customer_import.errors import ConfigError
from customer_import.sharding import Shard

BASE_URL_ENV = "CUSTOMER_IMPORT_BASE_URL"


@dataclass(frozen=True, slots=True)
class Settings:
    input: Path | str
    """A local path, or a URL (s3://, gs://, file://) kept as given: never resolved against a
    folder, and a Path would fold its "//"."""
    out_dir: Path
    base_url: str
    concurrency: int
    """Requests in flight: this shard's share of the job's, when the run is one shard of N."""
    rate_limit: float | None
    """Requests a second: the job's divided between the shards."""


def resolve_settings(
    job: JobConfig,
    input_path: Path | str | None,
    out_dir: Path | None,
    base_url: str | None,
    concurrency: int | None,
    rate_limit: float | None,
    *,
    shard: Shard | None,
    dry_run: bool,
    environ: Mapping[str, str],
) -> Settings:
    """Flag > environment > job file > default; ConfigError says what to fix."""
    source = input_path or job.source.path
    if source is None:
        raise ConfigError("no input file: set [source] path in the job file or pass --input")
    url = (base_url or environ.get(BASE_URL_ENV) or job.api.base_url).rstrip("/")
    check_base_url(url, job.api.allow_insecure_http)
    assert job.output.dir is not None  # load_job always resolves it
    concurrency = concurrency or job.api.concurrency
    rate_limit = rate_limit or job.api.rate_limit
    if shard is not None and not dry_run:  # a dry run sends nothing: there is nothing to share
        concurrency, rate_limit = shard.concurrency(concurrency), shard.rate_limit(rate_limit)
    return Settings(
        input=source,
        out_dir=out_dir or job.output.dir,
        base_url=url,
        concurrency=concurrency,
        rate_limit=rate_limit,
    )


def check_base_url(url: str, allow_insecure_http: bool) -> None:
    """https anywhere; plain http only to this machine unless the job explicitly allows it."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"api.base_url {url!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"api.base_url {url!r} must start with https:// (or http:// for localhost)"
        )
    if parsed.scheme == "http" and not allow_insecure_http and not is_loopback(parsed.host):
        raise ConfigError(
            f"api.base_url {url!r} is plain http to another machine: the API key would travel "
            "unencrypted; use https, or set api.allow_insecure_http = true"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
