"""The job file: TOML parsed into pydantic models.

Precedence for every setting: command-line flag > environment > job file > default.
Unknown keys are errors that name the key; relative paths in a job file are resolved
from the job file's own folder, so cron can run it from anywhere.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from customer_import.errors import ConfigError
from customer_import.schema import BOOLEAN_FIELDS, NAME_FIELDS, REQUIRED_FIELDS, TARGET_FIELDS

#: Cells equal to one of these (after trimming, in any case) are empty, unless the job lists its
#: own ``null_values``, which are compared exactly: a surname "Null" can then be kept.
DEFAULT_NULL_VALUES: Final = (
    *("", "NULL", "null", "None", "N/A", "n/a", "#N/A"),  # the list before issue 18
    *("nil", "[not provided]", "-", "--"),
)
DEFAULT_DROP_COLUMNS = ["Password"]
DEFAULT_MAX_ID_LENGTH: Final = 255
#: Fields whose invalid values may be left out (``on_invalid = "omit"``): not the required
#: ones, and not ``active``, whose absence would create an inactive customer active.
OMITTABLE_FIELDS: Final = (
    "lastName",
    "email",
    "phoneNumber",
    "notificationOptions.notifyEmail",
    "notificationOptions.notifyPhone",
)

BASE_URL_ENV: Final = "CUSTOMER_IMPORT_BASE_URL"
"""Overrides api.base_url (a --base-url flag overrides it)."""

RunMode = Literal["full", "incremental"]
DuplicatesMode = Literal["last", "first", "reject"]
OnMissing = Literal["ignore", "deactivate"]
OnUnfinished = Literal["auto", "resume", "restart", "refuse"]
Delimiter = Literal["auto", ",", ";", "\t", "|"]
TableFormat = Literal["csv", "xlsx"]
CsvDelimiter = Literal[",", ";", "\t", "|"]  # those a fed back rejects file is read with
DEFAULT_KEEP_RUNS: Final = 30

_HEADER_SAFE: Final = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what a key or id can be
_URL: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # two letters at least: not "C:\"


def is_url(location: str | Path) -> bool:
    """A string with a scheme (``s3://...``); a ``Path`` never is one."""
    return isinstance(location, str) and _URL.match(location) is not None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where the export is and how its bytes are read."""

    path: Path | str | None = None
    """The export: .csv .tsv .txt .csv.gz .parquet .xlsx; the format follows the extension. A
    URL (s3://, gs://, file://) stays text and is never resolved against the job file's folder."""
    sheet: str | None = None  # .xlsx: the sheet to read, by name; None: the first
    encoding: str = "utf-8"
    """Any Python codec name, or "auto" (BOM sniffing, then UTF-8, else Windows-1252)."""
    delimiter: Delimiter = "auto"
    """"auto" detects the delimiter from the header line."""
    null_values: list[str] | None = None
    """Cells equal to one of these (both trimmed; compared exactly) are empty. None: the
    defaults, ``DEFAULT_NULL_VALUES``, compared without regard to case."""
    has_header: bool = True
    """False for headerless files: the mapping then names columns by 1-based position (a job
    that does so must set it explicitly)."""
    drop_columns: list[str] = Field(default_factory=lambda: list(DEFAULT_DROP_COLUMNS))
    """Columns never copied into the rejects file (matched case-insensitively)."""
    batch_size: int = Field(default=25_000, gt=0)
    """Records read, mapped and validated at a time; bounds memory."""

    @field_validator("path", mode="before")
    @classmethod
    def _url_or_path(cls, value: Any) -> Any:
        """A URL stays text (``Path`` would fold its ``//``); anything else is a path."""
        if isinstance(value, str) and not is_url(value):
            return Path(value)
        return value


OnInvalid = Literal["reject", "omit"]


class FieldMapping(_Strict):
    """How one target field is filled: from a column (or the first of several that is not
    empty), or with a constant."""

    column: str | int | None = None
    """Source column name, or its 1-based position when the file has no header."""
    columns: list[str | int] | None = None
    """Fallbacks instead of ``column``: the first of them that is not empty is taken."""
    value: str | bool | None = None
    """A constant for every record, instead of a column."""
    default: str | bool | None = None
    """With ``column``/``columns``: the value when every column is empty."""
    on_invalid: OnInvalid = "reject"
    """Optional fields: "omit" imports the customer without an invalid value (a warning)."""
    default_region: str | None = None
    """phoneNumber only: ISO region for numbers without a country code ("US")."""
    true: list[str] = Field(default_factory=list)
    """Booleans only: extra words meaning true (case-insensitive)."""
    false: list[str] = Field(default_factory=list)
    """Booleans only: extra words meaning false (case-insensitive)."""
    invert: bool = False
    """Booleans only: the column means the opposite (an opt-out column for an opt-in field)."""
    part: Literal["first", "last"] | None = None
    """Name fields only: take the first word(s) or the last word of a full-name column."""

    @model_validator(mode="after")
    def _one_source(self) -> FieldMapping:
        given = [self.column is not None, self.columns is not None, self.value is not None]
        if sum(given) != 1:
            raise ValueError(
                "give exactly one of 'column' or 'value' (or 'columns', a list of fallbacks, "
                "instead of 'column')"
            )
        if self.columns is not None and not self.columns:
            raise ValueError("'columns' needs at least one column")
        if self.default is not None and self.value is not None:
            raise ValueError("'default' goes with 'column' or 'columns', not with 'value'")
        return self

    @property
    def sources(self) -> list[str | int]:
        """The columns read, in the order they are tried ([] for a constant)."""
        if self.columns is not None:
            return list(self.columns)
        return [] if self.column is None else [self.column]


def _as_field_mapping(raw: Any) -> Any:
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        return {"column": raw}
    return raw


class MappingConfig(BaseModel):
    """Target field (dotted for nested ones) -> how it is filled."""

    model_config = ConfigDict(frozen=True)
    fields: dict[str, FieldMapping]

    @model_validator(mode="before")
    @classmethod
    def _collect(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError("[mapping] must be a table of target field = source column")
        return {"fields": {k: _as_field_mapping(v) for k, v in raw.items()}}

    @model_validator(mode="after")
    def _check_fields(self) -> MappingConfig:
        for name, spec in self.fields.items():
            _check_target(name, spec)
        for required in ("externalId", "firstName"):
            if required not in self.fields:
                raise ValueError(f"[mapping] must map the required field {required!r}")
        return self


def _check_target(name: str, spec: FieldMapping) -> None:
    if name not in TARGET_FIELDS:
        close = difflib.get_close_matches(name, TARGET_FIELDS, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown target field {name!r}; {hint}known: {', '.join(TARGET_FIELDS)}")
    if spec.default_region is not None and name != "phoneNumber":
        raise ValueError(f"{name}: 'default_region' applies to phoneNumber only")
    if (spec.true or spec.false or spec.invert) and name not in BOOLEAN_FIELDS:
        raise ValueError(f"{name}: 'true', 'false' and 'invert' apply to boolean fields only")
    if spec.part is not None and name not in NAME_FIELDS:
        raise ValueError(f"{name}: 'part' applies to firstName and lastName only")
    if spec.on_invalid == "omit" and name not in OMITTABLE_FIELDS:
        why = "a required field" if name in REQUIRED_FIELDS else "a wrong active flag would be sent"
        raise ValueError(
            f'{name}: on_invalid = "omit" applies to {", ".join(OMITTABLE_FIELDS)} only ({why})'
        )


class ApiConfig(_Strict):
    """The API the job writes to, and how hard it may be pushed."""

    base_url: str = "http://localhost:3156"
    concurrency: int = Field(default=16, ge=1, le=1024)
    """Most requests in flight at once (also the connection pool size)."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds for one request, from connecting to the answer's last byte (a deadline)."""
    max_attempts: int = Field(default=5, ge=1)
    """Tries per record for transient failures (429 waits do not count)."""
    backoff_base: float = Field(default=0.5, ge=0)
    """Seconds; retry n waits a random time up to backoff_base * 2**(n-1) (full jitter)."""
    backoff_max: float = Field(default=30.0, ge=0)
    """Seconds; the cap of one retry's wait."""
    rate_limit: float | None = Field(default=None, gt=0)
    """Most requests per second across all workers; below it the rate adapts to 429s."""
    max_rate_limited_s: float = Field(default=600.0, gt=0)
    """Stop (resumable) when the API has answered nothing but 429 for this long."""
    connect_grace_s: float = Field(default=30.0, gt=0)
    """Stop (resumable) when no request has reached the API (no such host, refused, TLS) for
    this long since the run's first request."""
    max_outage_s: float = Field(default=300.0, gt=0)
    """Stop (resumable) when every request has failed (5xx, no connection) for this long."""
    breaker_failures: int = Field(default=50, gt=0)
    """Transient failures in a row, with no answer in between, that open the circuit breaker."""
    breaker_probe_s: float = Field(default=5.0, gt=0)
    """Seconds between probe requests while the circuit breaker is open."""
    api_key_env: str = "CUSTOMERS_API_KEY"
    """Environment variable holding the API key (never put the key itself in a job file)."""
    merchant_id_env: str = "CUSTOMERS_MERCHANT_ID"
    """Environment variable holding the merchant id."""
    allow_insecure_http: bool = False
    """Allow plain http to a non-loopback host."""
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    """The transport httpx requests go through; aiohttp by measurement (README, Performance)."""

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


class OutputConfig(_Strict):
    """Where results, rejects and the summary go."""

    dir: Path | None = None
    """Output directory; default out/<job name> beside the job file."""
    state_dir: Path | None = None
    """Incremental sync state; default state/ beside the job file."""
    metrics_file: Path | None = None
    """The last run's metrics in Prometheus' text format (a ``.prom`` file in node_exporter's
    textfile collector folder), written at the end of every run; none by default."""
    keep_runs: int = Field(default=DEFAULT_KEEP_RUNS, ge=1)
    """How many runs' folders ``history/`` keeps; older ones are removed when a run ends."""
    format: TableFormat = "csv"
    """results and rejects as CSV, or as Excel workbooks (every cell text; the excel extra)."""
    csv_bom: bool = False  # CSV outputs start with a UTF-8 BOM: a spreadsheet reads UTF-8
    csv_delimiter: CsvDelimiter = ","
    """CSV outputs' delimiter (";" for a spreadsheet set to a European locale)."""


class JobConfig(_Strict):
    """One job file."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]
    """Names the job in logs and state; letters, digits, . _ - only."""
    mode: RunMode = "full"
    """"incremental": send only records new or changed since the last successful upsert."""
    on_missing: OnMissing = "ignore"
    """Incremental: customers gone from the export since the last run are listed, or deactivated."""
    duplicates: DuplicatesMode = "last"
    """Which record of a repeated externalId is sent; "reject" rejects them all."""
    on_unfinished: OnUnfinished = "auto"
    """An output folder holding an unfinished run: "auto" resumes it when the input and job
    are unchanged, else closes it as abandoned (in its history folder) and starts anew;
    "resume" and "restart" always do that; "refuse" stops (exit 2). --resume/--restart win."""
    allow_empty: bool = False
    """Accept an export with no record; by default it stops the run (exit 3), nothing sent."""
    max_missing_ratio: float = Field(default=0.1, ge=0, le=1)
    """Incremental: when more than this share of the last export's customers are missing from
    this one, a run with on_missing = "deactivate" stops before sending anything."""
    max_invalid_ratio: float = Field(default=0.5, ge=0, le=1)
    """Stop before sending when more than this share of the first 1000 records is rejected."""
    max_id_length: int = Field(default=DEFAULT_MAX_ID_LENGTH, ge=1)
    """An externalId longer than this (in characters) rejects its record."""
    source: SourceConfig = Field(default_factory=SourceConfig)
    mapping: MappingConfig
    api: ApiConfig = Field(default_factory=ApiConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _positions_need_has_header(self) -> JobConfig:
        """A mapping by position on a file read with a header skips its first line, or maps a
        file with a header by position: either way the job must say which it is."""
        if "has_header" in self.source.model_fields_set:
            return self
        for target, spec in self.mapping.fields.items():
            position = next((c for c in spec.sources if isinstance(c, int)), None)
            if position is not None:
                raise ValueError(
                    f"[mapping] names a column by position ({target} = {position}): set "
                    "has_header = false in [source] for a file without a header line (or "
                    "has_header = true if its first line holds column names)"
                )
        return self


def load_job(path: Path) -> JobConfig:
    """Read and validate a job file; relative paths are resolved from its folder."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"job file not found: {path}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        job = JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from exc
    return _resolve_paths(job, path.resolve().parent)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the key path as it appears in the TOML."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "fields")
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key {loc!r}{_did_you_mean(err['loc'])}")
        else:
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{loc or 'job'}: {message}")
    return "; ".join(lines)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """A hint for a misspelt key: the nearest key of its table (difflib), or ""."""
    model = _table_model(loc[:-1])
    if model is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.75)
    return f": did you mean {close[0]!r}?" if close else ""


def _table_model(path: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model of the table at ``path`` (("api",) -> ApiConfig); None when not a model."""
    model: type[BaseModel] | None = JobConfig
    for part in path:
        if model is MappingConfig:  # [mapping]'s "fields", then a target: a FieldMapping
            model = MappingConfig if part == "fields" else FieldMapping
            continue
        field = model.model_fields.get(str(part)) if model is not None else None
        kind = field.annotation if field is not None else None
        model = kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None
    return None if model is MappingConfig else model


def _resolve_paths(job: JobConfig, base: Path) -> JobConfig:
    source_path = job.source.path
    if isinstance(source_path, Path):
        source_path = _under(base, source_path)
    out_dir = _under(base, job.output.dir or Path("out") / job.name)
    state_dir = _under(base, job.output.state_dir or Path("state"))
    metrics = job.output.metrics_file
    paths = {
        "dir": out_dir,
        "state_dir": state_dir,
        "metrics_file": metrics and _under(base, metrics),
    }
    return job.model_copy(
        update={
            "source": job.source.model_copy(update={"path": source_path}),
            "output": job.output.model_copy(update=paths),
        }
    )


def _under(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()


class Credentials(BaseModel):
    """API credentials, read from the environment only. repr never shows the key."""

    model_config = ConfigDict(frozen=True)
    api_key: str = Field(repr=False)
    merchant_id: str


def read_credentials(api: ApiConfig, environ: Mapping[str, str] | None = None) -> Credentials:
    """The key and merchant id from the environment; ConfigError names every variable that is
    missing or holds what cannot go in an HTTP header (never the value itself)."""
    env = os.environ if environ is None else environ
    names = (api.api_key_env, api.merchant_id_env)
    values = {name: env.get(name, "").strip() for name in names}
    missing = [name for name in names if not values[name]]
    if missing:
        listed = " and ".join(missing)
        raise ConfigError(f"set the environment variable{'s' * (len(missing) > 1)} {listed}")
    for name in names:
        if not _HEADER_SAFE.fullmatch(values[name]):
            raise ConfigError(
                f"the environment variable {name} holds a character that cannot go in an HTTP "
                "header (a line break, a space, a control or non-ASCII character): check how it "
                "was set (a file with a Windows line ending, a copied quote)"
            )
    return Credentials(api_key=values[api.api_key_env], merchant_id=values[api.merchant_id_env])
