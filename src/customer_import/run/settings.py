"""Run settings resolved from flags, environment and job file, in that order of precedence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import ValidationError

from customer_import.config import (
    BASE_URL_ENV,
    JobConfig,
    SourceConfig,
    describe_validation_error,
)
from customer_import.contracts import InputFacts, SendLimits
from customer_import.errors import ConfigError
from customer_import.hosts import is_loopback
from customer_import.outputs.summary import RunIdentity
from customer_import.record.opening import Policy
from customer_import.run.options import RunOptions
from customer_import.transform.sharding import check_shardable

if TYPE_CHECKING:
    from customer_import.source import Source


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

    @property
    def limits(self) -> SendLimits:
        return SendLimits(self.base_url, self.concurrency, self.rate_limit)


def resolve_settings(job: JobConfig, options: RunOptions, environ: Mapping[str, str]) -> Settings:
    """Flag > environment > job file > default; ConfigError says what to fix."""
    source = options.input or job.source.path
    if source is None:
        raise ConfigError("no input file: set [source] path in the job file or pass --input")
    url = (options.base_url or environ.get(BASE_URL_ENV) or job.api.base_url).rstrip("/")
    check_base_url(url, job.api.allow_insecure_http)
    assert job.output.dir is not None  # load_job always resolves it
    concurrency = options.concurrency or job.api.concurrency
    rate_limit = options.rate_limit or job.api.rate_limit
    shard = options.shard
    if shard is not None:
        check_shardable(job, options.mode)
    if shard is not None and not options.dry_run:  # a dry run sends nothing: nothing to share
        concurrency, rate_limit = shard.concurrency(concurrency), shard.rate_limit(rate_limit)
    return Settings(
        input=source,
        out_dir=options.out_dir or job.output.dir,
        base_url=url,
        concurrency=concurrency,
        rate_limit=rate_limit,
    )


def with_source_flags(job: JobConfig, options: RunOptions) -> JobConfig:
    """The job with ``--encoding`` / ``--delimiter`` in place of its ``[source]`` values."""
    flags = source_flags(options)
    if not flags:
        return job
    try:
        source = SourceConfig.model_validate({**job.source.model_dump(), **flags})
    except ValidationError as exc:
        raise ConfigError(f"--{', --'.join(flags)}: {describe_validation_error(exc)}") from exc
    return job.model_copy(update={"source": source})


def source_flags(options: RunOptions) -> dict[str, str]:
    given = {"encoding": options.encoding, "delimiter": options.delimiter}
    return {key: value for key, value in given.items() if value is not None}


def unfinished_policy(job: JobConfig, options: RunOptions) -> Policy:
    """What to do with an unfinished run in the output folder: a flag wins over the job."""
    dry_run = options.dry_run
    if options.resume:
        return Policy("resume", "--resume", dry_run)
    if options.restart:
        return Policy("restart", "--restart", dry_run)
    return Policy(job.on_unfinished, f'on_unfinished = "{job.on_unfinished}"', dry_run)


def check_base_url(url: str, allow_insecure_http: bool) -> None:
    """https anywhere; plain http only to this machine unless the job explicitly allows it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        raise ConfigError(f"api.base_url is not a URL: {exc}") from exc
    if parts.username is not None or parts.password is not None:
        raise ConfigError(  # the URL is not shown: it holds a secret
            "api.base_url holds a user name or password: remove them from the URL; the API "
            "key and merchant id come from the environment (CUSTOMERS_API_KEY, "
            "CUSTOMERS_MERCHANT_ID), never from the URL"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"api.base_url {url!r} must start with https:// (or http:// for localhost)"
        )
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise ConfigError(
            f"api.base_url {url!r} is plain http to another machine: the API key would travel "
            "unencrypted; use https, or set api.allow_insecure_http = true"
        )


def run_identity(
    job: JobConfig,
    settings: Settings,
    options: RunOptions,
    source: Source,
    run_id: str,
    refeed_of: str | None = None,
) -> RunIdentity:
    """What the summary says the run is."""
    return RunIdentity(
        job=job.name,
        dry_run=options.dry_run,
        input=InputFacts(str(settings.input), source.size, source.digest),
        encoding=source.encoding,
        delimiter=source.delimiter,
        base_url=settings.base_url,
        out_dir=str(settings.out_dir),
        shard=str(options.shard) if options.shard else None,
        metrics_file=job.output.metrics_file,
        output=job.output,
        run_id=run_id,
        refeed_of=refeed_of,
    )
