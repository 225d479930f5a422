"""The job file's text: TOML, with every choice explained in a comment beside or above it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Final

from customer_import.config import DEFAULT_DROP_COLUMNS
from customer_import.scaffold.draft import Draft, Field
from customer_import.scaffold.sample import Column, Sample

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_OPTIONS: Final = ("default_region", "invert", "true", "false", "part")
_SHOWN_DELIMITER: Final = {"\t": "tab", ",": '","', ";": '";"', "|": '"|"'}


def render(draft: Draft, *, name: str, source_path: str, job_file: str) -> str:
    """The whole file; ``source_path`` as it is to be written (relative to the job file's
    folder), ``job_file`` as the user will type it in the next command."""
    lines = [
        *_head(draft.sample, draft.attention, job_file),
        f"name = {_value(name)}",
        "",
        *_source(draft, source_path),
        "",
        *_mapping(draft),
        "",
        *_api(),
    ]
    return "\n".join(lines) + "\n"


def _head(sample: Sample, attention: Sequence[str], job_file: str) -> Iterator[str]:
    yield f"# A job for {_comment(sample.export)}, written by `customer-import init`."
    yield "# Every choice below says in a comment what it rests on: check them, then run"
    yield f"#   customer-import check {_comment(job_file)}"
    yield "# Every key and its default: docs/job-file.md in customer-import's repository."
    if attention:
        yield "#"
        yield from (f"# {_comment(line)}" for line in attention)
    yield ""


def _source(draft: Draft, source_path: str) -> Iterator[str]:
    sample = draft.sample
    yield "[source]"
    yield f"path = {_value(source_path)}"
    if sample.delimiter is not None:
        yield f'encoding = "auto"                 # this file: {sample.encoding}'
        shown = _SHOWN_DELIMITER.get(sample.delimiter, repr(sample.delimiter))
        yield f'delimiter = "auto"                # this file: {shown}'
        yield _has_header(sample.has_header)
    drop = _drop_columns(draft.secrets)
    yield f"drop_columns = {_value(drop)}   # never copied into rejects.csv"


def _has_header(has_header: bool) -> str:
    if has_header:
        return "has_header = true                 # the first line names the columns"
    return "has_header = false                # the first line is a record: columns by position"


def _drop_columns(secrets: Sequence[Column]) -> list[str]:
    """The default, and every secret column of this file the default does not catch."""
    drop = list(DEFAULT_DROP_COLUMNS)
    for column in secrets:
        if column.name.strip().casefold() not in {d.casefold() for d in drop}:
            drop.append(column.name)
    return drop


def _mapping(draft: Draft) -> Iterator[str]:
    yield "[mapping]"
    for field in draft.fields:
        yield from (f"# {_comment(note)}" for note in field.notes)
        yield _field_line(field)
    if draft.offered:
        yield "# Offered, commented out: see the top of this file."
    for field in draft.offered:
        yield f"# {_field_line(field)}   # {_comment('; '.join(field.notes))}"
    yield from _unmapped(draft)


def _field_line(field: Field) -> str:
    key = field.target if _BARE_KEY.fullmatch(field.target) else _value(field.target)
    ref = field.column.ref
    if not field.options:
        return f"{key} = {_value(ref)}"
    parts = [f"column = {_value(ref)}"]
    parts += [f"{k} = {_value(field.options[k])}" for k in _OPTIONS if k in field.options]
    return f"{key} = {{ {', '.join(parts)} }}"


def _unmapped(draft: Draft) -> Iterator[str]:
    yield ""
    if not draft.unmapped:
        yield "# Every column is mapped."
        return
    yield "# Columns not mapped (add a line above to send one):"
    for column, about in draft.unmapped:
        said = f": {about}" if about else ""
        yield f"#   {_comment(column.shown + said)}"


def _api() -> Iterator[str]:
    yield "[api]"
    yield 'base_url = "http://localhost:3156"   # the local sandbox (`customer-import sandbox`);'
    yield "                                     # the real API's https:// URL goes here"
    yield "# concurrency = 16                   # most requests in flight at once"
    yield ""
    yield "# [output]"
    yield '# dir = "out/<name>"                 # the default: out/<name> beside this file'


def _value(value: object) -> str:
    """A TOML value: JSON's escapes are TOML's, but for DEL, which TOML wants escaped too."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _comment(text: str) -> str:
    """One comment line: no line break or control character can end it early."""
    return _CONTROL.sub(" ", text)
