"""Pure validation: each field's accepted values, normalised forms and reasons."""

from __future__ import annotations

import json

import polars as pl
import pytest

from customer_import.config import MappingConfig
from customer_import.contracts import ROW
from customer_import.transform.fieldstats import EXAMPLES, FieldStats
from customer_import.transform.mapping import map_batch, plan_mapping
from customer_import.transform.normalise import likely_domain, misspelt_domain
from customer_import.transform.validation import FALSE_WORDS, TRUE_WORDS, Validator

BASE = {"externalId": "id", "firstName": "first"}


def validate(
    extra_mapping: dict[str, object], **columns: list[str]
) -> tuple[list[dict], list[dict]]:
    config = MappingConfig.model_validate({**BASE, **extra_mapping})
    rows = len(next(iter(columns.values())))
    data = {"id": [f"R{i}" for i in range(rows)], "first": ["Ann"] * rows, **columns}
    plan = plan_mapping(config, list(data), list(data), ["", "NULL"])
    frame = pl.DataFrame({ROW: list(range(1, rows + 1)), **data})
    result = Validator(plan).validate(map_batch(frame, plan))
    bodies = [json.loads(b) for b in result.valid["_body"]]
    return bodies, result.rejects.to_dicts()


def one(
    extra_mapping: dict[str, object], column: str, value: str
) -> tuple[dict | None, str | None]:
    bodies, rejects = validate(extra_mapping, **{column: [value]})
    return (bodies[0] if bodies else None), (rejects[0]["_reason"] if rejects else None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(212) 555-0123", "+12125550123"),
        ("+1-212-555-0123", "+12125550123"),
        ("212.555.0123", "+12125550123"),
        ("(212) 555-0123 ext 43", "+12125550123"),  # the extension is dropped, the number kept
        ("'+61 412 345 678", "+61412345678"),  # Excel's apostrophe
        ("+52 1 55 1234 5678", "+525512345678"),  # Mexico's old mobile prefix
        ("+5215512345678", "+525512345678"),
        ("+44 20 7946 0018", "+442079460018"),
        ("001-212-555-0123", "+12125550123"),  # 00: the international prefix outside the US
        ("0044 20 7946 0018", "+442079460018"),
        ("(212)\n555-0123", "+12125550123"),  # a line break from a quoted multi-line cell
    ],
)
def test_phones_are_normalised_to_e164(raw: str, expected: str) -> None:
    body, reason = one({"phoneNumber": {"column": "phone", "default_region": "US"}}, "phone", raw)
    assert reason is None and body is not None
    assert body["phoneNumber"] == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1234", "phoneNumber: '1234' is not a valid phone number"),
        ("000000000", "phoneNumber: '000000000' is not a valid phone number"),
        ("7.02255E+12", "phoneNumber: '7.02255E+12' is in Excel's scientific notation"),
        ("call me", "phoneNumber: 'call me' is not a phone number"),
        ("00 0000 0000", "phoneNumber: '00 0000 0000' is not a valid phone number"),
    ],
)
def test_bad_phones_reject_the_record_with_the_value_named(raw: str, reason: str) -> None:
    body, got = one({"phoneNumber": {"column": "phone", "default_region": "US"}}, "phone", raw)
    assert body is None and got is not None and got.startswith(reason)


def test_a_phone_without_country_code_and_no_default_region_says_what_to_set() -> None:
    _, reason = one({"phoneNumber": "phone"}, "phone", "212 555 0123")
    assert reason is not None and "set default_region" in reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ada@example.com", "ada@example.com"),
        ("ADA@EXAMPLE.COM", "ADA@example.com"),
        (" ada@example.com ", "ada@example.com"),
    ],
)
def test_emails_are_checked_and_normalised(raw: str, expected: str) -> None:
    body, reason = one({"email": "email"}, "email", raw)
    assert reason is None and body is not None and body["email"] == expected


@pytest.mark.parametrize(
    "raw", ["ada@", "ada example.com", "ada@@example.com", "a..b@example.com", "ada@localhost"]
)
def test_invalid_emails_reject_the_record(raw: str) -> None:
    body, reason = one({"email": "email"}, "email", raw)
    assert (
        body is None
        and reason is not None
        and reason.startswith(f"email: {raw.strip()!r} is not a valid")
    )


@pytest.mark.parametrize(
    ("spec", "raw", "expected"),
    [
        ({}, "yes", True),
        ({}, "Y", True),
        ({}, "TRUE", True),
        ({}, "t", True),
        ({}, "1", True),
        ({}, "no", False),
        ({}, "N", False),
        ({}, "False", False),
        ({}, "f", False),
        ({}, "0", False),
        ({"true": ["Active"], "false": ["Inactive"]}, "ACTIVE", True),
        ({"true": ["Active"], "false": ["Inactive"]}, "inactive", False),
        ({"invert": True}, "yes", False),  # an opt-out column onto an opt-in field
        (
            {"invert": True, "true": ["unsubscribed"], "false": ["subscribed"]},
            "Unsubscribed",
            False,
        ),
        ({"invert": True, "true": ["unsubscribed"], "false": ["subscribed"]}, "subscribed", True),
    ],
)
def test_boolean_words(spec: dict[str, object], raw: str, expected: bool) -> None:
    body, reason = one({"active": {"column": "flag", **spec}}, "flag", raw)
    assert reason is None and body is not None and body["active"] is expected


@pytest.mark.parametrize(
    "words",
    [
        {"true": ["Keep", "yes"], "false": ["drop"]},  # ASCII: looked up in every spelling
        {"true": ["sí", "ja"], "false": ["nein", "STRASSE"]},  # not ASCII: lower-cased first
        {"true": ["unsubscribed from all", "x"], "false": ["subscribed to every list"]},  # long
        {"true": ["both"], "false": ["Both", "no"]},  # a word in both lists reads as true
    ],
)
def test_yes_no_words_are_read_as_lower_casing_them_would(words: dict[str, list[str]]) -> None:
    """Whatever the words, a value means what its lower case means: the Kelvin sign reads as
    a "k", "ẞ" and "İ" lower-case to other words, and unknown values reject the record."""
    words_seen = [w for ws in words.values() for w in ws]
    cells = [
        *(v for w in words_seen for v in (w, w.upper(), w.title(), w.swapcase())),
        *("\u212aeep", "\u212aEEP", "KEEP", "SÍ", "Sí", "STRAẞE", "straße", "İ", "yes ", "nope"),
    ]
    bodies, rejects = validate({"active": {"column": "flag", **words}}, flag=cells)
    meaning = dict.fromkeys([*FALSE_WORDS, *(w.lower() for w in words["false"])], False)
    meaning |= dict.fromkeys([*TRUE_WORDS, *(w.lower() for w in words["true"])], True)
    read = {f"R{i}": meaning.get(cell.lower().strip()) for i, cell in enumerate(cells)}
    assert {b["externalId"]: b["active"] for b in bodies} == {
        row: value for row, value in read.items() if value is not None
    }
    assert {r["externalId"] for r in rejects} == {row for row, v in read.items() if v is None}


def test_an_unknown_boolean_word_rejects_the_record_naming_the_value() -> None:
    _, reason = one({"active": {"column": "flag", "true": ["Active"]}}, "flag", "Pending")
    assert reason is not None and reason.startswith(
        "active: 'Pending' is not a yes/no value (expected 1/active/"
    )


def test_required_fields_and_excel_ids_are_explained() -> None:
    config = MappingConfig.model_validate(BASE)
    frame = pl.DataFrame({ROW: [1, 2, 3], "id": ["", "6.61E+11", "ok"], "first": ["A", "B", " "]})
    plan = plan_mapping(config, ["id", "first"], ["id", "first"], [""])
    rejects = Validator(plan).validate(map_batch(frame, plan)).rejects.to_dicts()
    reasons = {r[ROW]: r["_reason"] for r in rejects}
    assert reasons[1] == "externalId: required, but empty"
    assert reasons[2].startswith(
        "externalId: '6.61E+11' is in Excel's scientific notation: the file went through Excel"
    )
    assert reasons[3] == "firstName: required, but empty"


def test_every_problem_of_a_record_is_listed() -> None:
    _, rejects = validate({"email": "email", "active": "flag"}, email=["bad@"], flag=["maybe"])
    assert rejects[0]["_reason"].count("; ") == 1


def test_an_email_in_a_name_column_is_caught() -> None:
    _, reason = one({"lastName": "last"}, "last", "ada@example.com")
    assert reason is not None and "looks like an email address, not a name" in reason


def test_empty_optional_fields_are_left_out_of_the_body() -> None:
    mapping: dict[str, object] = {
        "lastName": "last",
        "email": "email",
        "notificationOptions.notifyEmail": "ne",
        "notificationOptions.notifyPhone": "np",
    }
    bodies, _ = validate(
        mapping, last=["", "L"], email=["NULL", "a@example.com"], ne=["", "yes"], np=["", ""]
    )
    assert bodies[0] == {"externalId": "R0", "firstName": "Ann"}
    assert bodies[1] == {
        "externalId": "R1",
        "firstName": "Ann",
        "lastName": "L",
        "email": "a@example.com",
        "notificationOptions": {"notifyEmail": True},
    }


def test_bodies_are_valid_json_whatever_the_text_holds() -> None:
    bodies, _ = validate({"lastName": "last"}, last=['O"Brien \\ \n Ünïcödé'])
    assert bodies[0]["lastName"] == 'O"Brien \\ \n Ünïcödé'


def test_bodies_are_compact_json_text_whether_or_not_a_value_needs_escaping() -> None:
    config = MappingConfig.model_validate({**BASE, "lastName": "last", "active": "on"})
    last = ["Plain", 'O"Brien', "back\\slash", "tab\there", "Zoë", ""]
    data = {"id": [f"R{i}" for i in range(6)], "first": ["Ann"] * 6, "last": last}
    data["on"] = ["yes", "no", "", "yes", "no", "yes"]
    plan = plan_mapping(config, list(data), list(data), [""])
    frame = pl.DataFrame({ROW: list(range(1, 7)), **data})
    valid = Validator(plan).validate(map_batch(frame, plan)).valid
    expected = [
        json.dumps(
            {"externalId": f"R{i}", "firstName": "Ann"}
            | ({"lastName": v} if v else {})
            | ({"active": a == "yes"} if a else {}),
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for i, (v, a) in enumerate(zip(last, data["on"], strict=True))
    ]
    assert valid["_body"].to_list() == expected


@pytest.mark.parametrize("nested", [(), ("ne",), ("ne", "np")])
def test_empty_fields_are_left_out_of_bodies_whatever_the_values_look_like(
    nested: tuple[str, ...],
) -> None:
    """Null members are cut out of the encoded text: a value that looks like one (a quote, a
    key, ':null', braces) stays as it is, and an empty notificationOptions goes."""
    random = __import__("random").Random(5)
    pieces = ["a", "é", '"', "\\", "\t", ",", ":null", "{", "}", '"firstName":null', ',"x":null']
    rows = 400

    def value() -> str:
        return "".join(random.choice(pieces) for _ in range(random.randint(0, 4)))

    data = {"id": [f"R{i}" for i in range(rows)], "first": [value() for _ in range(rows)]}
    data |= {"last": [value() for _ in range(rows)]}
    data |= {c: [random.choice(["yes", "no", ""]) for _ in range(rows)] for c in nested}
    keys = {"ne": "notificationOptions.notifyEmail", "np": "notificationOptions.notifyPhone"}
    mapping = {**BASE, "lastName": "last", **{keys[c]: c for c in nested}}
    plan = plan_mapping(MappingConfig.model_validate(mapping), list(data), list(data), [""])
    frame = pl.DataFrame({ROW: list(range(1, rows + 1)), **data})
    valid = Validator(plan).validate(map_batch(frame, plan)).valid
    expected: list[dict[str, object]] = []
    for i in valid[ROW].to_list():
        body: dict[str, object] = {"externalId": f"R{i - 1}"}
        body |= {
            k: v.strip()
            for k, c in (("firstName", "first"), ("lastName", "last"))
            if (v := data[c][i - 1]).strip()
        }
        options = {keys[c].split(".")[1]: data[c][i - 1] == "yes" for c in nested if data[c][i - 1]}
        body |= {"notificationOptions": options} if options else {}
        expected.append(body)
    assert [json.loads(b) for b in valid["_body"]] == expected


@pytest.mark.parametrize(
    ("raw", "domain", "likely"),
    [
        ("ada@gmail.com.com", "gmail.com.com", "gmail.com"),
        ("ada@example.net.net", "example.net.net", "example.net"),
        ("ada@gmial.com", "gmial.com", "gmail.com"),
        ("ADA@HOTMIAL.COM", "hotmial.com", "hotmail.com"),
        ("ada@yaho.com", "yaho.com", "yahoo.com"),
        ("ada@gmail.con", "gmail.con", "gmail.com"),
        ("ada@gmial.con", "gmial.con", "gmail.com"),
    ],
)
def test_emails_with_a_misspelt_domain_are_rejected_never_corrected(
    raw: str, domain: str, likely: str
) -> None:
    body, reason = one({"email": "email"}, "email", raw)
    assert body is None
    assert reason == (
        f"email: {raw!r} has a misspelt domain: did you mean {likely!r} instead of {domain!r}? "
        "Correct it in the export"
    )


@pytest.mark.parametrize("raw", ["ada@mail.co.uk", "ada@example.com.co", "ada@gmail.co"])
def test_real_domains_near_the_typo_list_are_accepted(raw: str) -> None:
    body, reason = one({"email": "email"}, "email", raw)
    assert reason is None and body is not None and body["email"] == raw


@pytest.mark.parametrize("value", ["3E8", "12e45", "1E5X"])
def test_ids_that_only_resemble_numbers_are_not_taken_for_excel_notation(value: str) -> None:
    body, reason = one({}, "id", value)
    assert reason is None and body is not None and body["externalId"] == value


def test_the_vectorised_typo_check_agrees_with_the_judge() -> None:
    domains = ["gmail.com.com", "example.net.net", "gmial.com", "yaho.com", "gmail.con"]
    domains += ["gmail.com", "mail.co.uk", "example.com.co", "gmail.co", "con.example.org"]
    flagged = pl.select(misspelt_domain(pl.lit(pl.Series(domains)))).to_series().to_list()
    assert flagged == [likely_domain(d) is not None for d in domains]
    assert flagged == [True] * 5 + [False] * 5


def test_an_invalid_number_with_a_country_code_does_not_blame_the_default_region() -> None:
    _, reason = one(
        {"phoneNumber": {"column": "phone", "default_region": "GB"}}, "phone", "+44 7700 900202"
    )
    assert reason == "phoneNumber: '+44 7700 900202' is not a valid phone number"


def test_field_counts_of_batches_merged_equal_the_counts_of_the_whole_file() -> None:
    """Batches are validated on several threads, each counted apart, then merged."""
    config = MappingConfig.model_validate({**BASE, "email": "mail", "active": "on"})
    data = {
        "id": [f"R{i}" for i in range(12)],
        "first": ["Ann"] * 12,
        "mail": ["a@b.co", "x", "y", None, "c@d.org", "zz", "w", "a@b", "q", "r", "", "s"],
        "on": ["yes", "maybe", "no", "perhaps", None, "1", "2", "3", "4", "yes", "no", "5"],
    }
    plan = plan_mapping(config, list(data), list(data), ["", "NULL"])
    frame = map_batch(pl.DataFrame({ROW: list(range(1, 13)), **data}), plan)
    targets = tuple(plan.targets)
    whole = Validator(plan, targets).validate(frame).stats
    merged = FieldStats(targets)
    for start in (0, 5, 9):  # three batches of unequal size
        part = Validator(plan, targets).validate(frame.slice(start, {0: 5, 5: 4, 9: 3}[start]))
        assert part.stats is not None
        merged.merge(part.stats)
    assert whole is not None
    for target, report in whole.fields.items():
        got = merged.fields[target]
        assert (got.valid, got.empty, got.rejected) == (report.valid, report.empty, report.rejected)
        assert got.reasons == report.reasons
        for kind, examples in got.examples.items():  # which few are kept is not specified
            assert len(examples) == len(set(examples)) == len(report.examples[kind])
    assert merged.fields["email"].rejected == 8
    assert len(merged.fields["active"].top_reasons()[0][2]) == EXAMPLES
