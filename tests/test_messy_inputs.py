"""Every property of real merchant exports (shared/messy-inputs.md), through the real job.

Each test writes a small export carrying one property into tmp_path, runs ``run_job`` on it and
asserts the exact outcome: which records are sent with which normalised values, which are
rejected with which stage and reason, and conservation of record numbers. Tests are named
``test_pNN_...`` after the property's number in that list.

The request bodies are read at the network edge: a real run whose HTTP transport answers 201
like the API and keeps every body (``RecordingApi``), which is exactly what the job sends and
costs no server start. Where what the server stores matters (Parquet types, an end-to-end
encoding), the real sandbox is used.
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from customer_import import cli
from customer_import.contracts import ROW, ExitCode
from customer_import.errors import ConfigError, InputError
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.sandbox.testing import SandboxServer
from customer_import.transform.normalise import EXCEL_HINT
from customer_import.transform.quality import (
    EXAMPLES,
    SuspectText,
    double_encoding_warning,
    find_double_encoded,
    merge_counts,
)
from tests.conftest import CREDENTIALS, assert_conservation, load, read_csv, read_summary

HEADER = "id,first,last,email,phone"
MAPPING = """
[mapping]
externalId = "id"
firstName = "first"
lastName = "last"
email = "email"
phoneNumber = { column = "phone", default_region = "US" }
"""
MAPPING_ID_FIRST = '[mapping]\nexternalId = "id"\nfirstName = "first"\n'
REQUIRED_FIRST_NAME = "firstName: required, but empty"
REQUIRED_ID = "externalId: required, but empty"
WITHHELD = " (the line's text is withheld: the file has a column in drop_columns)"


# --- helpers -------------------------------------------------------------------------------


def csv_text(*lines: str, header: str = HEADER, eol: str = "\n") -> str:
    return eol.join([header, *lines]) + eol


def export_job(
    tmp_path: Path,
    data: str | bytes,
    *,
    name: str = "export.csv",
    source: str = "",
    mapping: str = MAPPING,
    top: str = "max_invalid_ratio = 1.0",
) -> Path:
    """The export written byte for byte, and a job file reading it (output in tmp_path/out)."""
    (tmp_path / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    job = tmp_path / "job.toml"
    job.write_text(
        f'name = "messy"\n{top}\n[source]\npath = "{name}"\n{source}\n{mapping}\n'
        '[api]\nbase_url = "http://127.0.0.1:9"\n'  # nothing listens: no request leaves by mistake
        '[output]\ndir = "out"\n',
        encoding="utf-8",
    )
    return job


class RecordingApi:
    """The API at the network edge: answers every upsert 201 and keeps the request body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        stamp = "2024-01-01T00:00:00.000Z"
        return httpx.Response(201, json={**body, "createdAt": stamp, "updatedAt": stamp})


@dataclass(frozen=True)
class Outcome:
    sent: dict[str, dict[str, Any]]
    """Request bodies by externalId."""
    statuses: dict[int, str]
    """results.csv: record number -> status."""
    rejects: dict[int, dict[str, str]]
    """rejects.csv rows by record number."""
    summary: dict[str, Any]

    def reasons(self) -> dict[int, tuple[str, str]]:
        """Record number -> (stage, reason) of every reject."""
        return {row: (r["_stage"], r["_reason"]) for row, r in self.rejects.items()}


def run(job: Path, records: int) -> Outcome:
    """Run the job, sending to a RecordingApi; the run completes and conserves every record."""
    api = RecordingApi()
    report = run_job(load(job), RunOptions(environ=CREDENTIALS, transport=httpx.MockTransport(api)))
    out = job.parent / "out"
    assert report.status == "completed", report.message
    assert_conservation(out, records)
    sent = {body["externalId"]: body for body in api.bodies}
    assert len(sent) == len(api.bodies), "one id sent twice"
    return Outcome(
        sent,
        {int(r["row"]): r["status"] for r in read_csv(out / "results.csv")},
        {int(r["_row"]): r for r in read_csv(out / "rejects.csv")},
        read_summary(out),
    )


def validation(*reasons: str) -> tuple[str, str]:
    return "validation", "; ".join(reasons)


# --- bytes and dialect ---------------------------------------------------------------------


def test_p01_utf8_bom_does_not_end_up_in_the_first_column_name(tmp_path: Path) -> None:
    data = codecs.BOM_UTF8 + csv_text("1,Zoë,Müller,,", "2,,Nameless,,").encode()

    outcome = run(export_job(tmp_path, data), 2)  # "id" resolves: no "\ufeffid" column

    assert outcome.sent == {"1": {"externalId": "1", "firstName": "Zoë", "lastName": "Müller"}}
    assert outcome.reasons() == {2: validation(REQUIRED_FIRST_NAME)}
    rejects = (tmp_path / "out" / "rejects.csv").read_bytes()
    assert rejects.startswith(b"id,first,last,email,phone,_row,")
    assert outcome.summary["encoding"] == "utf-8-sig"


NAMES = csv_text("1,Zoë,Müller,,", "2,José,Peña,,", "3,Ærø,Ñandú,,", eol="\r\n")
NAMES_SENT = {
    "1": {"externalId": "1", "firstName": "Zoë", "lastName": "Müller"},
    "2": {"externalId": "2", "firstName": "José", "lastName": "Peña"},
    "3": {"externalId": "3", "firstName": "Ærø", "lastName": "Ñandú"},
}


@pytest.mark.parametrize(
    ("data", "encoding", "used"),
    [
        pytest.param(NAMES.encode(), None, "utf-8", id="utf8-default"),
        pytest.param(codecs.BOM_UTF8 + NAMES.encode(), None, "utf-8-sig", id="utf8-bom-default"),
        pytest.param(NAMES.encode("utf-16"), None, "utf-16", id="utf16-bom-default"),
        pytest.param(
            codecs.BOM_UTF16_BE + NAMES.encode("utf-16-be"), None, "utf-16", id="utf16-be-bom"
        ),
        pytest.param(NAMES.encode("utf-16"), "utf-16", "utf-16", id="utf16-explicit"),
        pytest.param(NAMES.encode("cp1252"), "cp1252", "cp1252", id="cp1252-explicit"),
        pytest.param(NAMES.encode("latin-1"), "latin-1", "iso8859-1", id="latin1-explicit"),
        pytest.param(
            codecs.BOM_UTF8 + NAMES.encode(), "cp1252", "utf-8-sig", id="bom-beats-cp1252"
        ),
        pytest.param(NAMES.encode(), "auto", "utf-8", id="auto-utf8"),
        pytest.param(codecs.BOM_UTF8 + NAMES.encode(), "auto", "utf-8-sig", id="auto-utf8-bom"),
        pytest.param(NAMES.encode("utf-16"), "auto", "utf-16", id="auto-utf16"),
        pytest.param(NAMES.encode("cp1252"), "auto", "cp1252", id="auto-falls-back-to-cp1252"),
    ],
)
def test_p02_every_encoding_is_read_and_the_summary_names_the_codec_used(
    tmp_path: Path, data: bytes, encoding: str | None, used: str
) -> None:
    source = f'encoding = "{encoding}"' if encoding else ""

    outcome = run(export_job(tmp_path, data, source=source), 3)

    assert outcome.sent == NAMES_SENT
    assert outcome.summary["encoding"] == used


def test_p02_cp1252_bytes_read_as_utf8_stop_the_job_naming_the_byte_and_the_fix(
    tmp_path: Path,
) -> None:
    job = export_job(tmp_path, NAMES.encode("cp1252"))

    with pytest.raises(InputError) as caught:
        run_job(load(job), RunOptions(dry_run=True, environ={}))

    assert "cannot decode byte 0xeb at offset 31 (line 2) as utf-8" in str(caught.value)
    assert 'set encoding = "auto" (or "cp1252" for Windows exports)' in str(caught.value)
    assert not (tmp_path / "out").exists()  # nothing was read, sent or written


def test_p02_excel_unicode_text_save_is_read_with_default_settings_and_stored_intact(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """Excel's "Unicode Text": UTF-16 LE with a BOM, tab-separated, .txt: no settings needed."""
    text = "id\tfirst\tlast\r\n1\tZoë\tO’Brien\r\n2\tJosé\tPeña\r\n"
    mapping = '[mapping]\nexternalId = "id"\nfirstName = "first"\nlastName = "last"\n'
    job = export_job(tmp_path, text.encode("utf-16"), name="export.txt", mapping=mapping)

    report = run_job(load(job), RunOptions(environ=CREDENTIALS, base_url=sandbox.base_url))

    assert report.summary.encoding == "utf-16" and report.summary.delimiter == "\t"
    stored = {c["externalId"]: (c["firstName"], c["lastName"]) for c in sandbox.customers()}
    assert stored == {"1": ("Zoë", "O’Brien"), "2": ("José", "Peña")}
    assert_conservation(tmp_path / "out", 2)


def test_gzipped_export_is_read_like_the_plain_one(tmp_path: Path) -> None:
    data = gzip.compress(NAMES.encode("cp1252"))

    outcome = run(export_job(tmp_path, data, name="export.csv.gz", source='encoding = "auto"'), 3)

    assert outcome.sent == NAMES_SENT
    assert outcome.summary["encoding"] == "cp1252"


def test_p03_double_encoded_text_is_imported_as_it_is_never_repaired(tmp_path: Path) -> None:
    lines = ("1,René,Par√©,,", "2,Émile,CollÔøΩge,,", "3,Ana,PÃ©rez,,", "4,Seán,Oâ€™Brien,,")

    outcome = run(export_job(tmp_path, csv_text(*lines)), 4)

    assert {i: b["lastName"] for i, b in outcome.sent.items()} == {
        "1": "Par√©",
        "2": "CollÔøΩge",
        "3": "PÃ©rez",
        "4": "Oâ€™Brien",
    }


DOUBLE_ENCODED = [
    "Par√©",  # Paré read as Mac Roman
    "CollÔøΩge",  # a lost character (U+FFFD), then read as Mac Roman
    "Coll\ufffdge",  # a lost character
    "PÃ©rez",  # Pérez read as Windows-1252
    "Oâ€™Brien",  # a curly apostrophe read as Windows-1252
    "MÃ¼ller",
    "Ð˜Ð²Ð°Ð½",  # Иван
    "DvoÅ™Ã¡k",  # Dvořák
    "ðŸ˜€",  # an emoji
    "ï»¿Ada",  # a BOM inside a value
]
GENUINE = [
    "Zoë",
    "Müller",
    "José Peña",
    "Ødegaard",
    "Straße",
    "François",
    "Łukasz",
    "Dvořák",
    "Иван",
    "李小龙",
    "O’Brien",
    "Ångström",
    "Þór",
    "São Paulo",
    "SÃO PAULO",
    "«Élise»",
    "Nº 5",
    "Señor…",
    "😀",
]


@pytest.mark.parametrize("value", DOUBLE_ENCODED)
def test_p03_double_encoded_values_are_counted(value: str) -> None:
    frame = pl.DataFrame({"lastName": [value, "Plain"]})

    assert find_double_encoded(frame) == {"lastName": SuspectText("lastName", 2, 1, (value,))}


def test_p03_genuine_accented_names_are_not_counted() -> None:
    found = find_double_encoded(pl.DataFrame({"lastName": GENUINE}))
    assert found == {"lastName": SuspectText("lastName", len(GENUINE), 0, ())}
    assert not found["lastName"].frequent


def test_p03_counts_are_per_mapped_text_field_with_a_few_distinct_examples() -> None:
    mapped = pl.DataFrame(
        {
            ROW: [1, 2, 3, 4, 5],
            "firstName": ["RenÃ©", "RenÃ©", "Ana", "Ã‰milie", "ZoÃ«"],
            "lastName": ["Ok", None, "PÃ©rez", "Ok", "Ok"],
            "email": ["a@example.com", None, None, None, None],
            "active": ["true", None, None, None, None],
        }
    )

    found = {k: v for k, v in find_double_encoded(mapped).items() if v.suspect}

    assert found == {
        "firstName": SuspectText("firstName", 5, 4, ("RenÃ©", "Ã‰milie", "ZoÃ«")),
        "lastName": SuspectText("lastName", 4, 1, ("PÃ©rez",)),
    }
    assert len(found["firstName"].examples) == EXAMPLES
    assert find_double_encoded(mapped, ["email"]) == {"email": SuspectText("email", 1, 0, ())}


def test_p03_counts_of_batches_add_up_and_frequency_decides_the_warning() -> None:
    first = find_double_encoded(pl.DataFrame({"lastName": ["PÃ©rez"] + ["Ok"] * 99}))
    second = find_double_encoded(pl.DataFrame({"lastName": ["Oâ€™Brien"] * 2 + ["Ok"] * 898}))

    total = merge_counts(first, second)

    assert total == {"lastName": SuspectText("lastName", 1000, 3, ("PÃ©rez", "Oâ€™Brien"))}
    assert not total["lastName"].frequent  # 0.3 %: a stray value, no warning
    assert first["lastName"].frequent  # 1 %: worth a warning


def test_p03_warning_names_the_field_and_masks_emails() -> None:
    found = SuspectText("email", 200, 12, ("josÃ©@example.com",))

    assert double_encoding_warning(found) == (
        "email: 12 of 200 values look double-encoded (e.g. 'j***@example.com'): the text was "
        "decoded with the wrong encoding before this export was written. They are imported as "
        "they are; correct them in the system the export comes from"
    )


@pytest.mark.parametrize(
    ("delimiter", "header", "row", "last"),
    [
        (",", HEADER, '1,Ada,"Smith, Jr.",ada@example.com,212 555 0101', "Smith, Jr."),
        (
            ";",
            HEADER.replace(",", ";"),
            "1;Ada;Smith, Jr.;ada@example.com;212 555 0101",
            "Smith, Jr.",
        ),
        (
            "\t",
            HEADER.replace(",", "\t"),
            "1\tAda\tSmith, Jr.\tada@example.com\t212 555 0101",
            "Smith, Jr.",
        ),
        (
            "|",
            HEADER.replace(",", "|"),
            '1|Ada|"Smith| Jr."|ada@example.com|212 555 0101',
            "Smith| Jr.",
        ),
        (
            ";",
            HEADER.replace(",", ";"),
            '1;Ada;"Smith; Jr.";ada@example.com;212 555 0101',
            "Smith; Jr.",
        ),
    ],
    ids=["comma", "semicolon", "tab", "pipe", "quoted-semicolon"],
)
def test_p04_delimiter_is_detected_from_the_header_and_quoted_ones_are_data(
    tmp_path: Path, delimiter: str, header: str, row: str, last: str
) -> None:
    outcome = run(export_job(tmp_path, csv_text(row, header=header)), 1)

    assert outcome.sent == {
        "1": {
            "externalId": "1",
            "firstName": "Ada",
            "lastName": last,
            "email": "ada@example.com",
            "phoneNumber": "+12125550101",
        }
    }
    assert outcome.summary["delimiter"] == delimiter


LINES_SENT = {
    "1": {"externalId": "1", "firstName": "Ada"},
    "2": {"externalId": "2", "firstName": "Bob"},
    "3": {"externalId": "3", "firstName": "Cy"},
}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(f"{HEADER}\n1,Ada,,,\n2,Bob,,,\n3,Cy,,,\n", id="lf"),
        pytest.param(f"{HEADER}\r\n1,Ada,,,\r\n2,Bob,,,\r\n3,Cy,,,\r\n", id="crlf"),
        pytest.param(f"{HEADER}\r\n1,Ada,,,\n2,Bob,,,\r\n3,Cy,,,\n", id="mixed"),
        pytest.param(f"{HEADER}\n1,Ada,,,\n2,Bob,,,\n3,Cy,,,", id="no-final-newline"),
        pytest.param(f"{HEADER}\r\n1,Ada,,,\r\n2,Bob,,,\r\n3,Cy,,,\r\n\r\n\r\n  \n", id="trailing"),
        pytest.param(f"\n{HEADER}\n1,Ada,,,\n\n2,Bob,,,\n \t \n3,Cy,,,\n", id="blank-inside"),
    ],
)
def test_p05_line_endings_and_blank_lines_give_the_same_numbered_records(
    tmp_path: Path, data: str
) -> None:
    outcome = run(export_job(tmp_path, data), 3)

    assert outcome.sent == LINES_SENT
    assert outcome.statuses == {1: "created", 2: "created", 3: "created"}


def test_p05_blank_lines_get_no_number_so_later_rejects_keep_exact_numbers(
    tmp_path: Path,
) -> None:
    data = f"{HEADER}\r\n1,Ada,,,\r\n\r\n2,,,,\n\n   \n3,Cy,,\r\n4,Di,,,"

    outcome = run(export_job(tmp_path, data), 4)

    assert sorted(outcome.sent) == ["1", "4"]
    assert outcome.reasons() == {
        2: validation(REQUIRED_FIRST_NAME),
        3: ("parse", "line has 4 fields, the header has 5"),
    }
    assert outcome.rejects[3]["_raw"] == "3,Cy,,"


def test_p06_line_breaks_inside_quoted_fields_stay_in_one_record(tmp_path: Path) -> None:
    header = HEADER + ",notes"
    data = csv_text(
        '1,Ada,Lovelace,"ada@example.com\n","(212)\r\n555-0101","Called twice.\nPrefers email."',
        '2,Grace,Hopper,"grace\n@example.com",,"two\nlines"',
        "3,Alan,Turing,,,",
        header=header,
    )

    outcome = run(export_job(tmp_path, data), 3)

    assert outcome.sent == {
        "1": {
            "externalId": "1",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@example.com",  # the break at the end is trimmed
            "phoneNumber": "+12125550101",  # a break inside a phone is layout
        },
        "3": {"externalId": "3", "firstName": "Alan", "lastName": "Turing"},
    }
    assert outcome.reasons() == {
        2: validation(
            "email: 'grace\\n@example.com' is not a valid email address (The email address "
            "contains invalid characters before the @-sign: U+000A)"
        )
    }
    assert outcome.rejects[2]["notes"] == "two\nlines"  # the source value as read


def test_p07_unescaped_quote_inside_a_quoted_field_rejects_that_line_only(
    tmp_path: Path,
) -> None:
    data = csv_text(
        '1,"ABC"S XYZ",Smith,,',
        '2,Jo "JJ" 5\'11",Smith,,',  # quotes inside an unquoted field are data
        '3,"Open,Smith,,',  # a quote that runs into the next line
        '4,"Cy",Smith,,',
        "5,Dee,Smith,,",
    )

    outcome = run(export_job(tmp_path, data), 5)

    assert outcome.sent == {
        "2": {"externalId": "2", "firstName": 'Jo "JJ" 5\'11"', "lastName": "Smith"},
        "4": {"externalId": "4", "firstName": "Cy", "lastName": "Smith"},
        "5": {"externalId": "5", "firstName": "Dee", "lastName": "Smith"},
    }
    assert outcome.reasons() == {
        1: (
            "parse",
            "stray quote inside a quoted field (csv: ',' expected after '\"'). "
            'A quote in one is written ""',
        ),
        3: (
            "parse",
            "unbalanced quote: a quoted field opened on this line runs over the following lines "
            "(csv: ',' expected after '\"'). Reading restarts at the next line",
        ),
    }
    assert outcome.rejects[1]["_raw"] == '1,"ABC"S XYZ",Smith,,'
    assert outcome.rejects[3]["_raw"] == '3,"Open,Smith,,'
    assert {outcome.rejects[1][c] for c in HEADER.split(",")} == {""}  # no guessed values


def test_p07_quote_that_never_closes_at_the_end_of_the_file(tmp_path: Path) -> None:
    outcome = run(export_job(tmp_path, csv_text("1,Ada,,,", '2,"Bob,,,')), 2)

    assert sorted(outcome.sent) == ["1"]
    assert outcome.reasons() == {
        2: ("parse", "unbalanced quote: a quoted field opened on this line never closes")
    }
    assert outcome.rejects[2]["_raw"] == '2,"Bob,,,'


def test_p08_ragged_lines_are_parse_rejects_with_their_raw_text_and_exact_numbers(
    tmp_path: Path,
) -> None:
    data = csv_text("1,Ada,,,", "2,Too,Many,,,,extra", "3,Few,C", "4,Cy,,,", eol="\r\n")

    outcome = run(export_job(tmp_path, data), 4)

    assert sorted(outcome.sent) == ["1", "4"]
    assert outcome.reasons() == {
        2: ("parse", "line has 7 fields, the header has 5"),
        3: ("parse", "line has 3 fields, the header has 5"),
    }
    assert (outcome.rejects[2]["_raw"], outcome.rejects[3]["_raw"]) == (
        "2,Too,Many,,,,extra",
        "3,Few,C",
    )
    assert outcome.summary["rejected_by_stage"] == {"parse": 2}


HUBSPOT = "Record ID,First Name,Phone Number,Phone Number,Create Date,Create Date"
HUBSPOT_ROWS = ("1,Ada,212 555 0101,(646) 555-0199,2024-01-02,2024-03-04", "2,,,,,")


@pytest.mark.parametrize(
    ("named", "phone"),
    [("Phone Number_1", "+12125550101"), ("Phone Number_2", "+16465550199")],
)
def test_p09_each_of_a_repeated_header_can_be_named(tmp_path: Path, named: str, phone: str) -> None:
    mapping = (
        f'[mapping]\nexternalId = "Record ID"\nfirstName = "First Name"\n'
        f'phoneNumber = {{ column = "{named}", default_region = "US" }}\n'
    )
    job = export_job(tmp_path, csv_text(*HUBSPOT_ROWS, header=HUBSPOT), mapping=mapping)

    outcome = run(job, 2)

    assert outcome.sent == {"1": {"externalId": "1", "firstName": "Ada", "phoneNumber": phone}}
    assert outcome.reasons() == {2: validation(REQUIRED_FIRST_NAME)}
    header = (tmp_path / "out" / "rejects.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == HUBSPOT + ",_row,_stage,_reason,_raw"  # as in the source, to feed back


def test_p09_naming_a_repeated_header_plainly_is_refused_before_anything_is_read(
    tmp_path: Path,
) -> None:
    mapping = (
        '[mapping]\nexternalId = "Record ID"\nfirstName = "First Name"\n'
        'phoneNumber = { column = "Phone Number", default_region = "US" }\n'
    )
    job = export_job(tmp_path, csv_text(*HUBSPOT_ROWS, header=HUBSPOT), mapping=mapping)

    with pytest.raises(ConfigError) as caught:
        run_job(load(job), RunOptions(dry_run=True, environ={}))

    assert str(caught.value) == (
        "column 'Phone Number' appears 2 times in the header; map one of 'Phone Number_1', "
        "'Phone Number_2' (the first keeps the plain name only as 'Phone Number_1')"
    )


def test_p10_headerless_file_is_mapped_by_position_from_its_first_line(tmp_path: Path) -> None:
    mapping = (
        "[mapping]\nexternalId = 1\nemail = 2\n"
        'firstName = { column = 3, part = "first" }\nlastName = { column = 3, part = "last" }\n'
    )
    data = "A-1,ada@example.com,Ada Lovelace\nA-2,,Cher\n,x@example.com,No Id\n"

    outcome = run(export_job(tmp_path, data, source="has_header = false", mapping=mapping), 3)

    assert outcome.sent == {
        "A-1": {
            "externalId": "A-1",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@example.com",
        },
        "A-2": {"externalId": "A-2", "firstName": "Cher"},
    }
    assert outcome.reasons() == {3: validation(REQUIRED_ID)}
    assert outcome.rejects[3]["column_3"] == "No Id"


# --- values --------------------------------------------------------------------------------


def test_p11_excel_scientific_notation_ids_and_phones_are_rejected_saying_excel(
    tmp_path: Path,
) -> None:
    data = csv_text(
        "7.02255E+12,Ada,,,",
        "7.02255E+12,Bob,,,",  # another customer collapsed onto the same rounded id
        "'6.61E+11,Cy,,,",
        "7022550000001,Di,,,6.61E+11",
        "3E8,Eve,,,",  # no exponent sign: not Excel's, an ordinary (hex-like) id
    )

    outcome = run(export_job(tmp_path, data), 5)

    assert EXCEL_HINT.startswith("is in Excel's scientific notation: the file went through Excel")
    assert outcome.reasons() == {
        1: validation(f"externalId: '7.02255E+12' {EXCEL_HINT}"),
        2: validation(f"externalId: '7.02255E+12' {EXCEL_HINT}"),  # not a "duplicate" of 1
        3: validation(f"externalId: '6.61E+11' {EXCEL_HINT}"),
        4: validation(f"phoneNumber: '6.61E+11' {EXCEL_HINT}"),
    }
    assert outcome.sent == {"3E8": {"externalId": "3E8", "firstName": "Eve"}}
    assert outcome.rejects[3]["id"] == "'6.61E+11"  # the source value as read


def test_p12_leading_zeros_make_different_ids_and_nothing_is_type_inferred(
    tmp_path: Path,
) -> None:
    data = csv_text("000123,Ada,,,", "123,Bob,,,", "0042,Cy,,,001 212 555 0101", "00.50,Di,,,")

    outcome = run(export_job(tmp_path, data), 4)

    assert outcome.sent == {
        "000123": {"externalId": "000123", "firstName": "Ada"},
        "123": {"externalId": "123", "firstName": "Bob"},
        "0042": {"externalId": "0042", "firstName": "Cy", "phoneNumber": "+12125550101"},
        "00.50": {"externalId": "00.50", "firstName": "Di"},
    }


def test_p13_whitespace_is_trimmed_and_a_blank_name_is_empty(tmp_path: Path) -> None:
    data = csv_text(
        " 42 ,  Ada  ,\u00a0Lovelace\t,  ada@example.com ,",
        "43, ,Blank,,",
        "44,\u00a0\t,Blank,,",
        "45,Cy,   ,   ,  ",
    )

    outcome = run(export_job(tmp_path, data), 4)

    assert outcome.sent == {
        "42": {
            "externalId": "42",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@example.com",
        },
        "45": {"externalId": "45", "firstName": "Cy"},  # blank optional fields left out
    }
    assert outcome.reasons() == {
        2: validation(REQUIRED_FIRST_NAME),
        3: validation(REQUIRED_FIRST_NAME),
    }
    assert outcome.rejects[2]["first"] == " "  # the rejects file shows the cell as read


NULLS_EXPORT = csv_text(
    "1,Ada,-,N/A,#N/A",
    "2,Bob,Null,,",
    "3,NULL,X,,",
    "4,Cy,[not provided],-,None",
    "5,Di,Smith,[not provided],",
)


@pytest.mark.parametrize(
    ("null_values", "sent", "reasons"),
    [
        pytest.param(
            None,  # the defaults, in any case: "Null" is a null token too
            {
                "1": {"externalId": "1", "firstName": "Ada"},
                "2": {"externalId": "2", "firstName": "Bob"},
                "4": {"externalId": "4", "firstName": "Cy"},
                "5": {"externalId": "5", "firstName": "Di", "lastName": "Smith"},
            },
            {3: validation(REQUIRED_FIRST_NAME)},
            id="default-list",
        ),
        pytest.param(  # a job's own list is compared exactly: the surname "Null" survives
            ["", "NULL", "None", "N/A", "#N/A", "-", "[not provided]"],
            {
                "1": {"externalId": "1", "firstName": "Ada"},
                "2": {"externalId": "2", "firstName": "Bob", "lastName": "Null"},
                "4": {"externalId": "4", "firstName": "Cy"},
                "5": {"externalId": "5", "firstName": "Di", "lastName": "Smith"},
            },
            {3: validation(REQUIRED_FIRST_NAME)},
            id="configured-list",
        ),
    ],
)
def test_p14_null_tokens_are_the_configured_list_and_a_surname_null_survives(
    tmp_path: Path,
    null_values: list[str] | None,
    sent: dict[str, dict[str, str]],
    reasons: dict[int, tuple[str, str]],
) -> None:
    source = f"null_values = {json.dumps(null_values)}" if null_values is not None else ""

    outcome = run(export_job(tmp_path, NULLS_EXPORT, source=source), 5)

    assert outcome.sent == sent
    assert outcome.reasons() == reasons


BOOLEANS_HEADER = "id,first,status,opted_out,do_not_call"
BOOLEANS_MAPPING = """
[mapping]
externalId = "id"
firstName = "first"
"notificationOptions.notifyPhone" = { column = "do_not_call", invert = true }

[mapping.active]
column = "status"
true = ["Active", "subscribed"]
false = ["Inactive", "unsubscribed"]

[mapping."notificationOptions.notifyEmail"]
column = "opted_out"
invert = true
true = ["Opted out"]
false = ["Opted in"]
"""
BOOLEAN_ROWS = {  # status, opted_out, do_not_call -> active, notifyEmail, notifyPhone
    "1": ("yes", "no", "N", (True, True, True)),
    "2": ("Y", "1", "y", (True, False, False)),
    "3": ("TRUE", "FALSE", "0", (True, True, True)),
    "4": ("Active", "Opted out", "TRUE", (True, False, False)),
    "5": ("subscribed", "OPTED IN", "f", (True, True, True)),
    "6": ("unsubscribed", "True", "F", (False, False, True)),
    "7": ("Inactive", "0", "1", (False, True, False)),
    "8": ("false", "t", "Yes", (False, False, False)),
}


def test_p15_boolean_vocabularies_and_inverted_opt_out_columns(tmp_path: Path) -> None:
    lines = [f"{i},A,{s},{o},{d}" for i, (s, o, d, _) in BOOLEAN_ROWS.items()]
    lines += ["9,A,Maybe,no,n", "10,A,yes,unknown,", "11,A,,,"]
    job = export_job(tmp_path, csv_text(*lines, header=BOOLEANS_HEADER), mapping=BOOLEANS_MAPPING)

    outcome = run(job, 11)

    for i, (*_, (active, email, phone)) in BOOLEAN_ROWS.items():
        assert outcome.sent[i] == {
            "externalId": i,
            "firstName": "A",
            "active": active,
            "notificationOptions": {"notifyEmail": email, "notifyPhone": phone},
        }, i
    assert outcome.sent["11"] == {"externalId": "11", "firstName": "A"}
    assert outcome.reasons() == {
        9: validation(
            "active: 'Maybe' is not a yes/no value (expected 1/active/subscribed/t/true/y/yes "
            "or 0/f/false/inactive/n/no/unsubscribed)"
        ),
        10: validation(
            "notificationOptions.notifyEmail: 'unknown' is not a yes/no value (expected "
            "1/opted out/t/true/y/yes or 0/f/false/n/no/opted in)"
        ),
    }


PHONES = {  # id -> (cell, E.164 sent, or the reason)
    "P01": ("(212) 555-0123", "+12125550123"),
    "P02": ("+1-212-555-0123", "+12125550123"),
    "P03": ("212.555.0123", "+12125550123"),
    "P04": ("001-212-555-0123", "+12125550123"),  # 00: the international prefix
    "P05": ("0044 20 7946 0018", "+442079460018"),
    "P06": ("212-555-0123 ext 43", "+12125550123"),  # the extension is dropped
    "P07": ("+1 212 555 0123 x43", "+12125550123"),
    "P08": ("'+61 412 345 678", "+61412345678"),  # Excel's text marker removed
    "P09": ("+52 1 55 1234 5678", "+525512345678"),  # Mexico's old mobile 1
    "P10": ("+5215512345678", "+525512345678"),
    "P11": ("+44 20 7946 0018", "+442079460018"),
    "P12": (
        "1234",
        "phoneNumber: '1234' is not a valid phone number "
        "(numbers without a country code are read as US)",
    ),
    "P13": (
        "000000000",
        "phoneNumber: '000000000' is not a valid phone number "
        "(numbers without a country code are read as US)",
    ),
    "P14": ("6.61E+11", f"phoneNumber: '6.61E+11' {EXCEL_HINT}"),
    "P15": (
        "call me",
        "phoneNumber: 'call me' is not a phone number "
        "(the string supplied did not seem to be a phone number)",
    ),
}


def test_p16_phones_in_every_format_are_normalised_or_explained(tmp_path: Path) -> None:
    lines = [f'{i},A,,,"{cell}"' for i, (cell, _) in PHONES.items()]

    outcome = run(export_job(tmp_path, csv_text(*lines)), len(PHONES))

    sent = {i: body["phoneNumber"] for i, body in outcome.sent.items()}
    rejected = {outcome.rejects[row]["id"]: r for row, (_, r) in outcome.reasons().items()}
    assert {**sent, **rejected} == {i: expected for i, (_, expected) in PHONES.items()}
    assert all(
        b.keys() == {"externalId", "firstName", "phoneNumber"} for b in outcome.sent.values()
    )


VALID_EMAILS = {  # id -> (cell, email sent)
    "E1": ("ADA@EXAMPLE.COM", "ADA@example.com"),  # the domain is lower-cased, the rest kept
    "E2": ("  grace@example.com  ", "grace@example.com"),
    "E3": ("Alan.Turing@Example.Org", "Alan.Turing@example.org"),
}
INVALID_EMAILS = {  # id -> (cell, reason)
    "E4": (
        "edsger dijkstra@example.com",
        "email: 'edsger dijkstra@example.com' is not a valid email address (The email address "
        "contains invalid characters before the @-sign: SPACE)",
    ),
    "E5": (
        "ada@example",
        "email: 'ada@example' is not a valid email address (The part after the @-sign is not "
        "valid. It should have a period)",
    ),
}
TYPO_EMAILS = {  # id -> (cell, its domain, the likely one)
    "T1": ("ada@gmail.com.com", "gmail.com.com", "gmail.com"),
    "T2": ("bob@gmial.com", "gmial.com", "gmail.com"),
    "T3": ("cy@hotmial.com", "hotmial.com", "hotmail.com"),
    "T4": ("di@yaho.com", "yaho.com", "yahoo.com"),
    "T5": ("EVE@GMAIL.CON", "gmail.con", "gmail.com"),
}


def test_p17_emails_are_normalised_and_typos_rejected_naming_the_likely_domain(
    tmp_path: Path,
) -> None:
    cells = {i: cell for i, (cell, *_) in {**VALID_EMAILS, **INVALID_EMAILS, **TYPO_EMAILS}.items()}
    lines = [f"{i},A,,{cell}," for i, cell in cells.items()]

    outcome = run(export_job(tmp_path, csv_text(*lines)), len(cells))

    assert {i: b["email"] for i, b in outcome.sent.items()} == {
        i: sent for i, (_, sent) in VALID_EMAILS.items()
    }
    rejected = {outcome.rejects[row]["id"]: reason for row, reason in outcome.reasons().items()}
    assert rejected == {
        **{i: validation(reason) for i, (_, reason) in INVALID_EMAILS.items()},
        **{
            i: validation(
                f"email: '{cell}' has a misspelt domain: did you mean '{likely}' instead of "
                f"'{domain}'? Correct it in the export"
            )
            for i, (cell, domain, likely) in TYPO_EMAILS.items()
        },
    }


def test_p17_an_email_in_a_name_column_is_a_wrong_mapping(tmp_path: Path) -> None:
    data = csv_text("1,ada@example.com,Lovelace,,", "2,Grace,grace@example.com,,")

    outcome = run(export_job(tmp_path, data), 2)

    assert outcome.sent == {}
    assert outcome.reasons() == {
        1: validation(
            "firstName: 'ada@example.com' looks like an email address, not a name: "
            "check the mapping"
        ),
        2: validation(
            "lastName: 'grace@example.com' looks like an email address, not a name: "
            "check the mapping"
        ),
    }


def duplicate_reject(external_id: str, rows: str) -> tuple[str, str]:
    return (
        "duplicate",
        f'externalId {external_id!r} appears in records {rows} (duplicates = "reject")',
    )


DUPLICATES = csv_text(
    "D-1,A,,first@example.com,",
    " D-1 ,A,,second@example.com,",  # the same id once trimmed
    "'000123,B,,apostrophe@example.com,",  # the same id once Excel's marker is removed
    "000123,B,,plain@example.com,",
    "abc-1,C,,,",
    "ABC-1,C,,,",  # ids are case-sensitive: another customer
    "D-1,A,,third@example.com,",
)
CASE_DIFFERS = {"abc-1": None, "ABC-1": None}  # both sent, neither has an email
BOTH = {5: "created", 6: "created"}


@pytest.mark.parametrize(
    ("mode", "emails", "statuses", "reasons"),
    [
        (
            "last",
            {"D-1": "third@example.com", "000123": "plain@example.com", **CASE_DIFFERS},
            {1: "duplicate", 2: "duplicate", 3: "duplicate", 4: "created", 7: "created", **BOTH},
            {},
        ),
        (
            "first",
            {"D-1": "first@example.com", "000123": "apostrophe@example.com", **CASE_DIFFERS},
            {1: "created", 2: "duplicate", 3: "created", 4: "duplicate", 7: "duplicate", **BOTH},
            {},
        ),
        (
            "reject",
            CASE_DIFFERS,
            BOTH,
            {
                **dict.fromkeys((1, 2, 7), duplicate_reject("D-1", "1, 2, 7")),
                **dict.fromkeys((3, 4), duplicate_reject("000123", "3, 4")),
            },
        ),
    ],
)
def test_p18_ids_that_match_after_normalisation_are_duplicates(
    tmp_path: Path,
    mode: str,
    emails: dict[str, str],
    statuses: dict[int, str],
    reasons: dict[int, tuple[str, str]],
) -> None:
    outcome = run(export_job(tmp_path, DUPLICATES, top=f'duplicates = "{mode}"'), 7)

    assert {i: b.get("email") for i, b in outcome.sent.items()} == emails
    assert outcome.statuses == statuses
    assert outcome.reasons() == reasons


def test_p18_superseded_records_name_the_record_that_won(tmp_path: Path) -> None:
    outcome = run(export_job(tmp_path, DUPLICATES), 7)

    details = {int(r["row"]): r["detail"] for r in read_csv(tmp_path / "out" / "results.csv")}
    assert {row: details[row] for row in (1, 2, 3)} == {
        1: "superseded by record 7",
        2: "superseded by record 7",
        3: "superseded by record 4",
    }
    assert outcome.summary["duplicate"] == 3


def test_p19_a_single_name_column_is_split_only_as_configured(tmp_path: Path) -> None:
    mapping = (
        '[mapping]\nexternalId = "id"\n'
        'firstName = { column = "Name", part = "first" }\n'
        'lastName = { column = "Name", part = "last" }\n'
    )
    data = csv_text(
        "1,Mary Ann Smith",
        "2,  John   Ronald  Tolkien ",
        "3,Cher",
        "4,",
        "5,ada@example.com",
        header="id,Name",
    )

    outcome = run(export_job(tmp_path, data, mapping=mapping), 5)

    assert outcome.sent == {
        "1": {"externalId": "1", "firstName": "Mary Ann", "lastName": "Smith"},
        "2": {"externalId": "2", "firstName": "John Ronald", "lastName": "Tolkien"},
        "3": {"externalId": "3", "firstName": "Cher"},  # one word: no last name
    }
    assert outcome.reasons() == {
        4: validation(REQUIRED_FIRST_NAME),
        5: validation(
            "firstName: 'ada@example.com' looks like an email address, not a name: "
            "check the mapping"
        ),
    }


def test_p20_records_without_an_id_are_rejected_each_and_never_merged(tmp_path: Path) -> None:
    data = csv_text(
        ",Guest,One,g1@example.com,", "  ,Guest,Two,,", "NULL,Guest,Three,,", "cus_1,Ada,,,"
    )

    outcome = run(
        export_job(tmp_path, data, top='duplicates = "reject"\nmax_invalid_ratio = 1.0'), 4
    )

    assert outcome.sent == {"cus_1": {"externalId": "cus_1", "firstName": "Ada"}}
    assert outcome.reasons() == {row: validation(REQUIRED_ID) for row in (1, 2, 3)}


PASSWORDS = ("hunter2-Secret!", "s3cr3t-Pa55", "leaky-Pa55word", "quoted-Pa55")


@pytest.mark.parametrize("column", ["Password", "PASSWORD", "password"])
def test_p21_a_password_column_is_copied_nowhere(tmp_path: Path, column: str) -> None:
    header = f"id,first,last,email,{column},phone"
    data = csv_text(
        f"1,Ada,Lovelace,ada@example.com,{PASSWORDS[0]},",
        f"2,Bob,Builder,not-an-email,{PASSWORDS[1]},",
        f"3,Too,Many,,{PASSWORDS[2]},,extra",
        f'4,"ABC"S XYZ",,,{PASSWORDS[3]},',
        header=header,
    )

    outcome = run(export_job(tmp_path, data), 4)

    assert outcome.sent == {
        "1": {
            "externalId": "1",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@example.com",
        }
    }
    assert outcome.rejects[2]["email"] == "not-an-email"
    assert column not in outcome.rejects[2]
    assert outcome.reasons()[3] == ("parse", "line has 7 fields, the header has 6" + WITHHELD)
    assert outcome.reasons()[4][1].endswith(WITHHELD)
    assert outcome.rejects[3]["_raw"] == outcome.rejects[4]["_raw"] == ""
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not [p for p in PASSWORDS if p.encode() in content], path


def test_p21_drop_columns_leaves_every_listed_column_out(tmp_path: Path) -> None:
    header = "id,first,SSN,Security Answer,Password"
    data = csv_text("1,,123-45-6789,Rex,pw-1", header=header)
    source = 'drop_columns = ["Password", "ssn", "Security Answer"]'

    outcome = run(export_job(tmp_path, data, source=source, mapping=MAPPING_ID_FIRST), 1)

    rejects = (tmp_path / "out" / "rejects.csv").read_text(encoding="utf-8")
    assert rejects.splitlines()[0] == "id,first,_row,_stage,_reason,_raw"
    assert outcome.reasons() == {1: validation(REQUIRED_FIRST_NAME)}
    assert not {"123-45-6789", "Rex", "pw-1"} & set(rejects.replace("\n", ",").split(","))


# --- Parquet -------------------------------------------------------------------------------


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("id_type", [pa.int64(), pa.float64()], ids=["int64", "float64-with-nan"])
def test_parquet_typed_columns_are_stored_as_the_api_expects(
    tmp_path: Path, sandbox: SandboxServer, id_type: pa.DataType
) -> None:
    ids = [123, 456, 789, None] if id_type == pa.int64() else [123.0, 456.0, 789.0, float("nan")]
    table = pa.table(
        {
            "id": pa.array(ids, id_type, from_pandas=True),
            "first": ["Ada", None, "Grace", "Alan"],
            "phone": pa.array([2125550101, None, None, None], pa.int64()),
            "active": pa.array([True, None, False, True]),
            "opted_out": pa.array([False, True, None, None]),
            "created": pa.array(
                [dt.datetime(2024, 3, 20, 10, 0), dt.datetime(2024, 3, 21, 8, 30, 15), None, None],
                pa.timestamp("us"),
            ),
        }
    )
    mapping = (
        '[mapping]\nexternalId = "id"\nfirstName = "first"\n'
        'phoneNumber = { column = "phone", default_region = "US" }\nactive = "active"\n'
        '"notificationOptions.notifyEmail" = { column = "opted_out", invert = true }\n'
    )
    job = export_job(tmp_path, parquet_bytes(table), name="export.parquet", mapping=mapping)

    run_job(load(job), RunOptions(environ=CREDENTIALS, base_url=sandbox.base_url))

    stored = {c.pop("externalId"): c for c in sandbox.customers()}
    assert sorted(stored) == ["123", "789"]  # never "123.0"
    assert stored["123"]["phoneNumber"] == "+12125550101"
    assert (stored["123"]["active"], stored["123"]["notificationOptions"]) == (
        True,
        {"notifyEmail": True},
    )
    assert stored["789"]["active"] is False and "notificationOptions" not in stored["789"]
    rejects = {int(r["_row"]): r for r in read_csv(tmp_path / "out" / "rejects.csv")}
    assert {row: r["_reason"] for row, r in rejects.items()} == {
        2: REQUIRED_FIRST_NAME,
        4: REQUIRED_ID,
    }
    assert (rejects[2]["id"], rejects[2]["opted_out"], rejects[2]["created"]) == (
        "456",
        "true",
        "2024-03-21T08:30:15",
    )
    assert rejects[4]["id"] == ""  # null and NaN are empty, never "nan"
    assert read_summary(tmp_path / "out")["encoding"] == "parquet"
    assert_conservation(tmp_path / "out", 4)


def test_parquet_string_ids_keep_their_leading_zeros(tmp_path: Path) -> None:
    table = pa.table({"id": ["000123", "123"], "first": ["Ada", "Bob"]})
    job = export_job(
        tmp_path, parquet_bytes(table), name="export.parquet", mapping=MAPPING_ID_FIRST
    )

    outcome = run(job, 2)

    assert sorted(outcome.sent) == ["000123", "123"]


# --- whole-file guards and the check command ------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b'"id,first\n1,Ada\n', "unusable header line (unbalanced quote", id="quote"),
        pytest.param(b",,,\n1,2,3,4\n", "the header line has no column names", id="no-names"),
        pytest.param(b"\n \n\r\n", "no header line: the file holds only blank lines", id="blank"),
        pytest.param(b"", "the file is empty (0 bytes)", id="empty"),
        pytest.param(NAMES.encode("cp1252"), "cannot decode byte 0xeb", id="wrong-encoding"),
    ],
)
def test_unusable_header_or_bytes_exit_2_before_anything_is_sent(
    tmp_path: Path, data: bytes, message: str
) -> None:
    job = export_job(tmp_path, data, mapping=MAPPING_ID_FIRST)

    with pytest.raises(InputError, match=re.escape(message)):
        run_job(load(job), RunOptions(dry_run=True, environ={}))
    assert cli.main(["run", str(job), "--dry-run", "--no-progress"]) == ExitCode.NOTHING_DONE


def test_mostly_invalid_export_stops_before_sending_and_names_the_dominant_reasons(
    tmp_path: Path, env: dict[str, str]
) -> None:
    data = csv_text(*(f"7.0225{i}E+12,Ada,,," for i in range(6)), "9,Bob,,b@gmial.com,", "10,Cy,,,")
    job = export_job(tmp_path, data, top="")  # the default max_invalid_ratio = 0.5
    api = RecordingApi()

    report = run_job(load(job), RunOptions(environ=env, transport=httpx.MockTransport(api)))

    assert report.status == "aborted"
    assert api.bodies == []
    message = report.message or ""
    assert message.startswith("7 of the first 8 records are invalid (more than max_invalid_ratio")
    assert (
        "Most common reasons: externalId: … is in Excel's scientific notation: the file went "
        "through Excel, which rounds long numbers (6x); email: … has a misspelt domain: did you "
        "mean … instead of …? Correct it in the export (1x)."
    ) in message
    assert "7.0225" not in message and "gmial" not in message  # values are left out
    assert cli.main(["run", str(job), "--no-progress"]) == ExitCode.STOPPED
    summary = read_summary(tmp_path / "out")
    assert (summary["status"], summary["requests"]) == ("aborted", 0)


def test_check_reports_each_field_of_a_messy_export_with_masked_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = csv_text(
        "1,Ada,Lovelace,ada@example.com,(212) 555-0101",
        "2,Bob,,bob@gmial.com,6.61E+11",
        "3, ,,,",
        "4,Too,Many,,,,",
        "7.02255E+12,Di,,,",
    )
    job = export_job(tmp_path, data)

    assert cli.main(["check", str(job)]) == ExitCode.REJECTS

    out = capsys.readouterr().out
    assert "5 records: 1 valid, 0 duplicate, 4 rejected" in out
    assert "rejected by stage: parse 1, validation 3" in out
    assert "externalId: 3 valid, 0 empty, 1 rejected" in out
    assert "firstName: 3 valid, 0 empty, 1 rejected" in out  # a blank required name: rejected
    assert "email: 1 valid, 2 empty, 1 rejected" in out
    assert "1 x … has a misspelt domain: did you mean … instead of …? Correct it" in out
    assert "'b***@gmial.com'" in out and "bob@" not in out
    assert "phoneNumber: 1 valid, 2 empty, 1 rejected" in out
    assert "'6.******E+11'" in out
    check_rejects = read_csv(tmp_path / "out" / "check" / "rejects.csv")
    assert [r["_row"] for r in check_rejects] == ["2", "3", "4", "5"]
