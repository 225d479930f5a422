"""``init_job``: sample an export, draft its mapping, write the commented job file."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

from customer_import.config import is_url
from customer_import.contracts import ExitCode
from customer_import.errors import ConfigError
from customer_import.scaffold.choose import draft
from customer_import.scaffold.draft import Draft
from customer_import.scaffold.render import render
from customer_import.scaffold.sample import take_sample

_NOT_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class InitResult:
    path: Path
    """The job file written."""
    draft: Draft

    @property
    def ready(self) -> bool:
        """Whether the file loads as written (False: a choice is left to the user)."""
        return self.draft.ready

    def summary(self) -> str:
        """What was written and what it rests on, for the terminal."""
        sample = self.draft.sample
        mapped = ", ".join(f"{f.target} <- {f.column.shown}" for f in self.draft.fields)
        lines = [
            f"wrote {self.path} for {sample.export} ({_read_as(self.draft)}; "
            f"{sample.records} records sampled)",
            f"mapped: {mapped or 'nothing'}",
            f"not mapped: {_columns(len(self.draft.unmapped))}, listed in the file",
        ]
        lines += [f"  {line}" for line in self.draft.attention]
        return "\n".join(lines)

    def next_step(self, code: int) -> str:
        """The command to run next, given how the check ended (``code``)."""
        if not self.ready:
            return f"next: make the choices at the top of {self.path}, then: " + (
                f"customer-import check {self.path}"
            )
        if code == ExitCode.OK:
            return f"next: customer-import run {self.path}   (against [api] base_url)"
        return (
            f"next: some records would be rejected (rejects.csv above): fix {self.path} "
            f"or the export, then: customer-import check {self.path}"
        )


def init_job(export: Path | str, out: Path | None = None, *, force: bool = False) -> InitResult:
    """Write a commented job file for ``export`` (a path or URL) to ``out`` (default:
    ``<export name>.toml`` in the current folder). ConfigError when ``out`` exists and not
    ``force``; InputError/ConfigError when the export cannot be read as a run would read it."""
    job_file = out if out is not None else Path(f"{_stem(export)}.toml")
    if job_file.exists() and not force:
        raise ConfigError(f"{job_file} exists: name another with --out, or replace it with --force")
    drafted = draft(take_sample(export))
    text = render(
        drafted, name=_job_name(export), source_path=_source_path(export, job_file),
        job_file=str(job_file),
    )  # fmt: skip
    _write(job_file, text, force=force)
    return InitResult(job_file, drafted)


def _file_name(export: Path | str) -> str:
    if isinstance(export, Path):
        return export.name
    return PurePosixPath(export.split("?", 1)[0]).name if is_url(export) else Path(export).name


def _stem(export: Path | str) -> str:
    """ "customers" for customers.csv, customers.csv.gz and s3://bucket/customers.parquet."""
    name = _file_name(export)
    name = name[:-3] if name.lower().endswith(".gz") else name
    return Path(name).stem or "export"


def _job_name(export: Path | str) -> str:
    return _NOT_NAME.sub("-", _stem(export)).strip("-.") or "import"


def _source_path(export: Path | str, job_file: Path) -> str:
    """A path given relative is written relative to the job file's folder (a job file
    resolves it from there); an absolute path or a URL as given."""
    if is_url(export) or Path(export).is_absolute():
        return Path(export).as_posix() if not is_url(export) else str(export)
    target = Path(export).resolve()
    try:
        return Path(os.path.relpath(target, job_file.resolve().parent)).as_posix()
    except ValueError:  # another drive (Windows): only an absolute path reaches it
        return target.as_posix()


def _write(job_file: Path, text: str, *, force: bool) -> None:
    try:
        with job_file.open("w" if force else "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise ConfigError(
            f"{job_file} exists: name another with --out, or replace it with --force"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write {job_file}: {exc.strerror or exc}") from exc


def _columns(n: int) -> str:
    return f"{n} column" if n == 1 else f"{n} columns"


def _read_as(drafted: Draft) -> str:
    sample = drafted.sample
    if sample.delimiter is None:
        return "Parquet"
    header = "a header row" if sample.has_header else "no header row"
    return f"{sample.encoding}, delimiter {sample.delimiter!r}, {header}"
