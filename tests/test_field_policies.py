"""Issue 18, mapping a real export right the first time: what a job file can say about a field
(invalid optional values omitted, fallback columns and a default, null tokens), what it must say
about the header, and what ``check`` and the invalid-ratio guard tell a person.

Each test writes a small export with the property into tmp_path and runs the real job on it
(the helpers of test_messy_inputs.py: a run whose HTTP edge records every request body).
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from customer_import import cli
from customer_import.config import load_job
from customer_import.contracts import ExitCode
from customer_import.errors import ConfigError
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from tests.conftest import load, read_csv, read_summary
from tests.test_messy_inputs import RecordingApi, csv_text, export_job, run, validation

OMIT_MAPPING = """
[mapping]
externalId = "id"
firstName = "first"
lastName = {{ column = "last"{omit} }}
email = {{ column = "email"{omit} }}
phoneNumber = {{ column = "phone", default_region = "US"{omit} }}
"notificationOptions.notifyEmail" = {{ column = "opt_in"{omit} }}
"""
OMIT_HEADER = "id,first,last,email,phone,opt_in"
OMIT_ROWS = (
    "1,Ada,Lovelace,ada@example.com,(212) 555-0101,yes",
    "2,Bob,,,1234,",
    "3,Cy,,cy@gmial.com,,",
    "4,Di,di@example.com,,,",
    "5,Eve,,,,maybe",
    "6,,,,1234,",  # invalid for another reason: rejected, its phone not mentioned
)
NOT_VALID_PHONE = (
    "'1234' is not a valid phone number (numbers without a country code are read as US)"
)
MISSPELT = (
    "'cy@gmial.com' has a misspelt domain: did you mean 'gmail.com' instead of 'gmial.com'? "
    "Correct it in the export"
)
EMAIL_AS_NAME = "'di@example.com' looks like an email address, not a name: check the mapping"
NOT_YES_NO = "'maybe' is not a yes/no value (expected 1/t/true/y/yes or 0/f/false/n/no)"


def omit_job(tmp_path: Path, omit: bool = True) -> Path:
    mapping = OMIT_MAPPING.format(omit=', on_invalid = "omit"' if omit else "")
    return export_job(tmp_path, csv_text(*OMIT_ROWS, header=OMIT_HEADER), mapping=mapping)


def warnings_by_row(out: Path) -> dict[int, str]:
    return {int(r["row"]): r["warnings"] for r in read_csv(out / "results.csv")}


# --- on_invalid = "omit" --------------------------------------------------------------------


def test_omitted_fields_import_the_customer_without_them_and_say_why(tmp_path: Path) -> None:
    outcome = run(omit_job(tmp_path), len(OMIT_ROWS))

    assert outcome.sent == {
        "1": {
            "externalId": "1",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@example.com",
            "phoneNumber": "+12125550101",
            "notificationOptions": {"notifyEmail": True},
        },
        "2": {"externalId": "2", "firstName": "Bob"},
        "3": {"externalId": "3", "firstName": "Cy"},
        "4": {"externalId": "4", "firstName": "Di"},
        "5": {"externalId": "5", "firstName": "Eve"},
    }
    assert outcome.statuses == dict.fromkeys(range(1, 6), "created")
    assert warnings_by_row(tmp_path / "out") == {
        1: "",
        2: f"phoneNumber omitted: {NOT_VALID_PHONE}",
        3: f"email omitted: {MISSPELT}",
        4: f"lastName omitted: {EMAIL_AS_NAME}",
        5: f"notificationOptions.notifyEmail omitted: {NOT_YES_NO}",
    }
    assert outcome.reasons() == {6: validation("firstName: required, but empty")}
    assert outcome.summary["omitted"] == {
        "email": 1,
        "lastName": 1,
        "notificationOptions.notifyEmail": 1,
        "phoneNumber": 1,
    }


def test_without_a_policy_an_invalid_optional_value_still_rejects_its_record(
    tmp_path: Path,
) -> None:
    outcome = run(omit_job(tmp_path, omit=False), len(OMIT_ROWS))

    assert sorted(outcome.sent) == ["1"]
    assert outcome.reasons()[2] == validation(f"phoneNumber: {NOT_VALID_PHONE}")
    assert outcome.summary["omitted"] == {}


def test_a_dry_run_lists_the_omissions_of_valid_records(tmp_path: Path) -> None:
    report = run_job(load(omit_job(tmp_path)), RunOptions(dry_run=True, environ={}))

    results = {int(r["row"]): r for r in read_csv(tmp_path / "out" / "results.csv")}
    assert results[2]["status"] == "valid"
    assert results[2]["warnings"] == f"phoneNumber omitted: {NOT_VALID_PHONE}"
    assert dict(report.summary.omitted) == read_summary(tmp_path / "out")["omitted"]


def test_a_superseded_record_carries_no_warning_and_is_not_counted(tmp_path: Path) -> None:
    data = csv_text("1,Ada,,,1234,", "1,Ada,,,(212) 555-0101,", "2,Bob,,,1234,", header=OMIT_HEADER)
    job = export_job(tmp_path, data, mapping=OMIT_MAPPING.format(omit=', on_invalid = "omit"'))

    outcome = run(job, 3)

    assert outcome.statuses == {1: "duplicate", 2: "created", 3: "created"}
    assert warnings_by_row(tmp_path / "out") == {
        1: "",
        2: "",
        3: f"phoneNumber omitted: {NOT_VALID_PHONE}",
    }
    assert outcome.summary["omitted"] == {"phoneNumber": 1}


@pytest.mark.parametrize("field", ["externalId", "firstName", "active"])
def test_omit_is_refused_where_leaving_the_value_out_would_be_wrong(
    tmp_path: Path, field: str
) -> None:
    fields = {"externalId": '"id"', "firstName": '"first"'}
    fields[field] = '{ column = "x", on_invalid = "omit" }'
    mapping = "[mapping]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items())
    job = export_job(tmp_path, csv_text("1,A,,,", header="id,first,x,y,z"), mapping=mapping)

    with pytest.raises(ConfigError, match=f'{field}: on_invalid = "omit" applies to lastName'):
        load_job(job)


# --- fallbacks ------------------------------------------------------------------------------

FALLBACK_HEADER = "id,First Name,Billing First Name,Nick"
FALLBACK_MAPPING = """
[mapping]
externalId = "id"
firstName = { columns = ["First Name", "Billing First Name", "Nick"], default = "Customer" }
"""


@pytest.mark.parametrize(
    ("first", "billing", "nick", "sent"),
    [
        ("Ada", "Augusta", "Lady", "Ada"),
        ("", "Augusta", "Lady", "Augusta"),
        ("  ", " Augusta ", "Lady", "Augusta"),  # blank after trimming: the next column
        ("NULL", "n/a", "Lady", "Lady"),  # null tokens are empty
        ("", "", "", "Customer"),  # every column empty: the constant
        ("-", "--", "[not provided]", "Customer"),
    ],
)
def test_a_field_takes_the_first_non_empty_column_then_the_default(
    tmp_path: Path, first: str, billing: str, nick: str, sent: str
) -> None:
    data = csv_text(f"1,{first},{billing},{nick}", header=FALLBACK_HEADER)
    job = export_job(tmp_path, data, mapping=FALLBACK_MAPPING)

    outcome = run(job, 1)

    assert outcome.sent == {"1": {"externalId": "1", "firstName": sent}}


def test_fallback_id_columns_feed_the_repeated_id_check_too(tmp_path: Path) -> None:
    mapping = '[mapping]\nexternalId = { columns = ["id", "legacy"] }\nfirstName = "first"\n'
    data = csv_text("C-1,,Ada", ",C-1,Ada B.", ",,Cy", header="id,legacy,first")

    outcome = run(export_job(tmp_path, data, mapping=mapping), 3)

    assert outcome.sent == {"C-1": {"externalId": "C-1", "firstName": "Ada B."}}
    assert outcome.statuses == {1: "duplicate", 2: "created"}
    assert outcome.reasons() == {3: validation("externalId: required, but empty")}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('{ column = "a", columns = ["b"] }', "exactly one of 'column' or 'value'"),
        ('{ columns = ["a"], value = "x" }', "exactly one of 'column' or 'value'"),
        ("{ columns = [] }", "'columns' needs at least one column"),
        ('{ value = "x", default = "y" }', "'default' goes with 'column' or 'columns'"),
    ],
)
def test_fallback_mistakes_are_named(tmp_path: Path, spec: str, message: str) -> None:
    mapping = f'[mapping]\nexternalId = "id"\nfirstName = {spec}\n'
    job = export_job(tmp_path, csv_text("1,A", header="id,a"), mapping=mapping)

    with pytest.raises(ConfigError, match=message):
        load_job(job)


# --- null tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell",
    ["NULL", "Null", " null ", "NONE", "nil", "NIL", "N/a", "#n/a", "[Not Provided]", "-", "--"],
)
def test_default_null_tokens_match_in_any_case_and_with_spaces_around(
    tmp_path: Path, cell: str
) -> None:
    data = csv_text(f'1,Ada,"{cell}",,', "2,Bob,Nullman,,")

    outcome = run(export_job(tmp_path, data), 2)

    assert outcome.sent["1"] == {"externalId": "1", "firstName": "Ada"}
    assert outcome.sent["2"]["lastName"] == "Nullman"  # a token is a whole cell


def test_a_jobs_own_null_values_are_compared_exactly(tmp_path: Path) -> None:
    data = csv_text("1,Ada,NULL,,", "2,Bob,Null,,", "3,Cy, N/A ,,")
    job = export_job(tmp_path, data, source='null_values = ["NULL", " N/A "]')

    outcome = run(job, 3)

    assert {i: b.get("lastName") for i, b in outcome.sent.items()} == {
        "1": None,
        "2": "Null",  # a real surname: not in the job's list as written
        "3": None,  # tokens and cells are both trimmed
    }


# --- headerless by mistake ------------------------------------------------------------------

POSITIONAL = "[mapping]\nexternalId = 1\nfirstName = 2\n"


def test_a_positional_mapping_without_has_header_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    job = export_job(tmp_path, "1,Ada\n2,Bob\n", mapping=POSITIONAL)

    with pytest.raises(ConfigError, match=r"externalId = 1\): set has_header = false"):
        load_job(job)
    assert cli.main(["run", str(job), "--dry-run", "--no-progress"]) == ExitCode.NOTHING_DONE


@pytest.mark.parametrize(("has_header", "records"), [("false", 2), ("true", 1)])
def test_a_positional_mapping_with_has_header_set_explicitly_runs(
    tmp_path: Path, has_header: str, records: int
) -> None:
    job = export_job(
        tmp_path, "1,Ada\n2,Bob\n", source=f"has_header = {has_header}", mapping=POSITIONAL
    )

    outcome = run(job, records)

    assert len(outcome.sent) == records


@pytest.mark.parametrize(
    ("first_line", "kind", "column"),
    [
        ("C-1,Ada,ada@example.com", "an email address", 3),
        ("C-1,Ada,+1 212 555 0101", "a phone number", 3),
        ("C-1,(212) 555-0101,x", "a phone number", 2),
    ],
)
def test_a_header_line_holding_an_email_or_phone_is_a_warning_naming_the_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, first_line: str, kind: str, column: int
) -> None:
    columns = first_line.split(",")
    mapping = f'[mapping]\nexternalId = "{columns[0]}"\nfirstName = "{columns[1]}"\n'
    job = export_job(tmp_path, f"{first_line}\nC-2,Bob,x\n", mapping=mapping)

    with caplog.at_level(logging.WARNING, logger="customer_import"):
        outcome = run(job, 1)

    warnings = outcome.summary["warnings"]
    assert len(warnings) == 1
    assert warnings[0].startswith("the header line 'C-1,")
    assert f"holds {kind} in column {column}: it looks like a record" in warnings[0]
    assert "set has_header = false in [source]" in warnings[0]
    assert "ada@example.com" not in warnings[0] and "555 0101" not in warnings[0]  # masked
    assert warnings[0] in caplog.text


def test_an_ordinary_header_gives_no_warning(tmp_path: Path) -> None:
    outcome = run(export_job(tmp_path, csv_text("1,Ada,,,")), 1)

    assert outcome.summary["warnings"] == []


# --- check and the guard --------------------------------------------------------------------


def test_check_masks_emails_and_phones_in_every_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = csv_text(
        "1,ada@example.com,,,",  # an email in the name column
        "2,Bob,+1 212 555 0101,,",  # a phone in the last-name column is not a reject...
        "3,Cy,bob@example.com,,",
        "+44 20 7946 0018,Di,,,",  # a phone as an id is fine; shown masked in no reason
        "5,Eve,,eve@gmial.com,(212) 555-01",
    )
    job = export_job(tmp_path, data)

    assert cli.main(["check", str(job)]) == ExitCode.REJECTS

    out = capsys.readouterr().out
    for secret in ("ada@", "bob@", "eve@", "555-01", "555 0101"):
        assert secret not in out, secret
    assert "'a***@example.com'" in out and "'b***@example.com'" in out


def test_check_counts_describe_the_records_in_results_and_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = csv_text(
        "1,Ada,,bad-email,",  # superseded by record 2: neither sent nor rejected for its email
        "1,Ada,,ada@example.com,",
        "2,Bob,,also-bad,",
        "3,Cy,,,1234",
    )
    mapping = (
        '[mapping]\nexternalId = "id"\nfirstName = "first"\nemail = "email"\n'
        'phoneNumber = { column = "phone", default_region = "US", on_invalid = "omit" }\n'
    )
    job = export_job(tmp_path, data, mapping=mapping)

    assert cli.main(["check", str(job)]) == ExitCode.REJECTS

    out = capsys.readouterr().out
    assert "4 records: 2 valid, 1 duplicate, 1 rejected" in out
    assert "email: 1 valid, 1 empty, 1 rejected\n" in out  # record 1 is not counted
    assert "externalId: 3 valid, 0 empty, 0 rejected\n" in out
    assert "phoneNumber: 0 valid, 2 empty, 0 rejected, 1 omitted" in out
    assert "1 x omitted: … is not a valid phone number" in out
    rejects = read_csv(tmp_path / "out" / "check" / "rejects.csv")
    assert [r["_row"] for r in rejects] == ["3"]


def test_the_guard_names_the_fixes_that_work_and_never_resume(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    data = csv_text(*(f"{i},A,,,1234" for i in range(1, 9)), "9,Bob,,,", "10,Cy,,,")
    job = export_job(tmp_path, data, top="")  # the default max_invalid_ratio = 0.5
    api = RecordingApi()

    report = run_job(load(job), RunOptions(environ=env, transport=httpx.MockTransport(api)))

    message = report.message or ""
    assert message.startswith("8 of the first 10 records are invalid")
    assert "Most common reasons: phoneNumber: … is not a valid phone number (8x)." in message
    assert "run the job with --dry-run (it sends nothing and writes rejects.csv)" in message
    assert 'on_invalid = "omit" in the mapping of phoneNumber' in message
    assert "raise max_invalid_ratio" in message
    assert "resume" not in message
    assert api.bodies == []
    assert cli.main(["run", str(job), "--no-progress"]) == ExitCode.STOPPED
    assert "resume" not in capsys.readouterr().out
