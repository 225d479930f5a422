"""Issue 18, ids a person can trust: Excel's scientific notation and nothing else, invisible
and control characters, over-long ids, Unicode normalisation, and ids from typed Parquet
columns. Every case goes through the real job on a small export written into tmp_path (the
helpers of test_messy_inputs.py record the request bodies at the HTTP edge).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from customer_import import cli
from customer_import.contracts import ExitCode
from customer_import.errors import ConfigError
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.transform.ids import FLOAT_HINT
from customer_import.transform.normalise import EXCEL_HINT
from tests.conftest import load
from tests.test_messy_inputs import MAPPING_ID_FIRST, csv_text, export_job, run, validation

# --- Excel's scientific notation, and only it ------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "excel"),
    [
        ("7.02255E+12", True),
        ("7,02255E+12", True),  # the comma-decimal locales' Excel
        ("6E+11", True),
        ("6.61e+11", True),
        ("1.5E-3", True),
        ("8000177E-1605385774", False),  # a QuickBooks ListID
        ("3E8", False),  # no exponent sign: Excel always writes it
        ("12E+45", False),  # two digits before the E
        ("1.2E+123", False),  # three exponent digits
        ("7.02255E+12X", False),
        ("A7.0E+12", False),
    ],
)
def test_only_excels_scientific_notation_is_taken_for_a_rounded_id_or_phone(
    tmp_path: Path, cell: str, excel: bool
) -> None:
    data = csv_text(f'"{cell}",Ada,,,', f'2,Bob,,,"{cell}"')

    outcome = run(export_job(tmp_path, data), 2)

    if excel:
        assert outcome.reasons() == {
            1: validation(f"externalId: '{cell}' {EXCEL_HINT}"),
            2: validation(f"phoneNumber: '{cell}' {EXCEL_HINT}"),
        }
    else:
        assert outcome.sent[cell] == {"externalId": cell, "firstName": "Ada"}
        assert "Excel" not in outcome.reasons()[2][1]  # an invalid phone, but not Excel's


# --- characters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "named", "position"),
    [
        ("C\u200b1", "U+200B ZERO WIDTH SPACE", 2),
        ("\ufeffC-1", "U+FEFF BYTE ORDER MARK", 1),
        ("C-1\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE", 4),
        ("C\u200e1", "U+200E LEFT-TO-RIGHT MARK", 2),
        ("C\u20601", "U+2060 WORD JOINER", 2),
        ("C\u20661", "U+2066 LEFT-TO-RIGHT ISOLATE", 2),
        ("C\x001", "U+0000 NULL", 2),
        ("C\r1", "U+000D CARRIAGE RETURN", 2),
        ("C\n1", "U+000A LINE FEED", 2),
        ("C\x851", "U+0085 NEXT LINE", 2),
        ("C\x1f1", "U+001F a control character", 2),
    ],
)
def test_an_id_with_an_invisible_or_control_character_is_rejected_naming_it(
    tmp_path: Path, cell: str, named: str, position: int
) -> None:
    data = csv_text(f'"{cell}",Ada,,,', f'"{cell}",Ada again,,,', "C-2,Bob,,,")

    outcome = run(export_job(tmp_path, data), 3)

    reason = validation(
        f"externalId: {cell!r} holds {named} at position {position}: an invisible or control "
        "character, so the id would look like another one. Remove it in the export"
    )
    assert outcome.reasons() == {1: reason, 2: reason}  # never "duplicate": never sent
    assert sorted(outcome.sent) == ["C-2"]


def test_an_id_longer_than_max_id_length_is_rejected(tmp_path: Path) -> None:
    data = csv_text("ABCDE,Ada,,,", "ABCDEF,Bob,,,", f"{'X' * 30},Cy,,,")

    outcome = run(export_job(tmp_path, data, top="max_invalid_ratio = 1.0\nmax_id_length = 5"), 3)

    assert sorted(outcome.sent) == ["ABCDE"]
    assert outcome.reasons() == {
        2: validation("externalId: 'ABCDEF' is 6 characters long, more than max_id_length = 5"),
        3: validation(
            f"externalId: '{'X' * 20}…' is 30 characters long, more than max_id_length = 5"
        ),
    }


def test_max_id_length_is_255_by_default(tmp_path: Path) -> None:
    data = csv_text(f"{'a' * 255},Ada,,,", f"{'b' * 256},Bob,,,")

    outcome = run(export_job(tmp_path, data), 2)

    assert list(outcome.sent) == ["a" * 255]
    assert "256 characters long, more than max_id_length = 255" in outcome.reasons()[2][1]


# --- Unicode normalisation ------------------------------------------------------------------

COMPOSED, DECOMPOSED = "Caf\u00e9-1", "Cafe\u0301-1"


def test_an_id_not_in_nfc_is_rejected_so_two_spellings_never_make_two_customers(
    tmp_path: Path,
) -> None:
    data = csv_text(f"{COMPOSED},Ada,,,", f"{DECOMPOSED},Ada,,,")

    outcome = run(export_job(tmp_path, data), 2)

    assert list(outcome.sent) == [COMPOSED]
    assert outcome.reasons() == {
        2: validation(
            f"externalId: {DECOMPOSED!r} is not in Unicode NFC form (U+0301 COMBINING ACUTE "
            "ACCENT at position 5): the same-looking id in NFC would be another customer. "
            "Export the ids in NFC, the usual form"
        )
    }


def test_names_and_emails_are_sent_in_nfc(tmp_path: Path) -> None:
    data = csv_text("1,Rene\u0301,Mu\u0308ller,rene\u0301@example.com,", "2,René,Müller,,")

    outcome = run(export_job(tmp_path, data), 2)

    assert outcome.sent["1"] == {
        "externalId": "1",
        "firstName": "Ren\u00e9",
        "lastName": "M\u00fcller",
        "email": "ren\u00e9@example.com",
    }
    assert outcome.sent["1"]["firstName"] == outcome.sent["2"]["firstName"]


# --- Parquet types --------------------------------------------------------------------------


def parquet_job(tmp_path: Path, table: pa.Table, mapping: str = MAPPING_ID_FIRST) -> Path:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return export_job(tmp_path, buffer.getvalue(), name="export.parquet", mapping=mapping)


@pytest.mark.parametrize(
    ("dtype", "value", "sent"),
    [
        (pa.float64(), 123.0, "123"),
        (pa.float64(), -5.0, "-5"),
        (pa.float64(), 2.0**53 - 1, "9007199254740991"),
        (pa.float64(), 2.0**53, None),  # from here a double no longer holds every integer
        (pa.float64(), 1.5, None),
        (pa.float64(), 7.02255e12 + 0.5, None),
        (pa.float32(), 16777215.0, "16777215"),
        (pa.float32(), 16777216.0, None),  # 2**24: a float's integers end there
    ],
)
def test_an_id_from_a_float_column_is_taken_only_as_an_exact_integer(
    tmp_path: Path, dtype: pa.DataType, value: float, sent: str | None
) -> None:
    table = pa.table({"id": pa.array([value], dtype), "first": ["Ada"]})

    outcome = run(parquet_job(tmp_path, table), 1)

    if sent is not None:
        assert outcome.sent == {sent: {"externalId": sent, "firstName": "Ada"}}
    else:
        stage, reason = outcome.reasons()[1]
        assert stage == "validation" and reason.endswith(f": {FLOAT_HINT}")
        assert outcome.sent == {}


def test_a_float_id_that_is_nan_or_null_is_empty(tmp_path: Path) -> None:
    table = pa.table({"id": pa.array([math.nan, None, 1.0], pa.float64()), "first": ["A"] * 3})

    outcome = run(parquet_job(tmp_path, table), 3)

    assert outcome.reasons() == {
        1: validation("externalId: required, but empty"),
        2: validation("externalId: required, but empty"),
    }
    assert list(outcome.sent) == ["1"]


@pytest.mark.parametrize(
    ("column", "type_named"),
    [
        (pa.array([{"a": 1}], pa.struct([("a", pa.int64())])), "Struct"),
        (pa.array([["x", "y"]], pa.list_(pa.string())), "List"),
        (pa.array([b"\x00\x01"], pa.binary()), "Binary"),
    ],
)
def test_a_nested_or_binary_column_mapped_to_a_text_field_is_a_configuration_error(
    tmp_path: Path, column: pa.Array, type_named: str
) -> None:
    table = pa.table({"id": ["C-1"], "first": ["Ada"], "odd": column})
    mapping = MAPPING_ID_FIRST + 'lastName = "odd"\n'
    job = parquet_job(tmp_path, table, mapping)

    with pytest.raises(ConfigError) as caught:
        run_job(load(job), RunOptions(dry_run=True, environ={}))

    assert str(caught.value).startswith(f"[mapping] lastName reads column 'odd', a {type_named}")
    assert cli.main(["run", str(job), "--dry-run", "--no-progress"]) == ExitCode.NOTHING_DONE


def test_a_nested_column_that_is_not_mapped_still_reaches_rejects_as_json(tmp_path: Path) -> None:
    table = pa.table(
        {"id": ["C-1", "C-2"], "first": ["Ada", None], "tags": [["vip"], ["new", "x"]]}
    )

    outcome = run(parquet_job(tmp_path, table), 2)

    assert outcome.rejects[2]["tags"] == '["new", "x"]'
