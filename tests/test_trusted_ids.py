"""Issue 18, ids a person can trust: Excel's scientific notation and nothing else. Every case
goes through the real job on a small export written into tmp_path (the helpers of
test_messy_inputs.py record the request bodies at the HTTP edge).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_import.transform.normalise import EXCEL_HINT
from tests.test_messy_inputs import csv_text, export_job, run, validation

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
