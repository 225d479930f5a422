"""`customer-import init`: a job file drafted from an export it has never seen, over every fixture
in tests/fixtures/ and the repository's sample files, and the choices it makes, table by table."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import pytest

from customer_import import cli
from customer_import.config import FieldMapping, JobConfig, load_job
from customer_import.contracts import ExitCode
from customer_import.errors import ConfigError
from customer_import.run.options import RunOptions
from customer_import.runner import run_job
from customer_import.scaffold import init_job
from customer_import.scaffold.booleans import vocabulary
from customer_import.scaffold.choose import draft
from customer_import.scaffold.names import normalise
from customer_import.scaffold.regions import choose_region, evidence
from customer_import.scaffold.sample import Column, Sample

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EMAIL, PHONE = "notificationOptions.notifyEmail", "notificationOptions.notifyPhone"

#: What each fixture's job maps: a column, or the FieldMapping keys that matter. Exports without
#: an id column map externalId only once the offered line is uncommented.
EXPECTED: dict[str, dict[str, Any]] = {
    "shopify_2023.csv": {
        "externalId": "Customer ID",
        "firstName": "First Name",
        "lastName": "Last Name",
        "email": "Email",
        "phoneNumber": {"column": "Phone", "default_region": "US"},
        EMAIL: "Accepts Email Marketing",
        PHONE: "Accepts SMS Marketing",
    },
    "shopify_legacy.csv": {
        "externalId": "Email",
        "firstName": "First Name",
        "lastName": "Last Name",
        "email": "Email",
        "phoneNumber": {"column": "Phone", "default_region": "CA"},
        EMAIL: "Accepts Marketing",
    },
    "salesforce.csv": {
        "externalId": "Id",
        "firstName": "FirstName",
        "lastName": "LastName",
        "email": "Email",
        "phoneNumber": {"column": "MobilePhone", "default_region": "US"},
        EMAIL: {"column": "HasOptedOutOfEmail", "invert": True},
        PHONE: {"column": "DoNotCall", "invert": True},
    },
    "hubspot.csv": {
        "externalId": "Record ID",
        "firstName": "First Name",
        "lastName": "Last Name",
        "email": "Email",
        "phoneNumber": {"column": "Phone Number_2", "default_region": "GB"},
        EMAIL: {"column": "Unsubscribed from all email", "invert": True},
    },
    "stripe.csv": {
        "externalId": "id",
        "firstName": {"column": "Name", "part": "first"},
        "lastName": {"column": "Name", "part": "last"},
        "email": "Email",
        "phoneNumber": {"column": "Phone", "default_region": "DE"},
    },
    "quickbooks.tsv": {
        "externalId": "ListID",
        "firstName": "FirstName",
        "lastName": "LastName",
        "email": "Email",
        "phoneNumber": {"column": "Phone", "default_region": "US"},
        "active": "IsActive",
    },
    "woocommerce.csv": {
        "externalId": "Email",
        "firstName": {"column": "Name", "part": "first"},
        "lastName": {"column": "Name", "part": "last"},
        "email": "Email",
    },
    "magento.csv": {
        "externalId": "ID",
        "firstName": {"column": "Name", "part": "first"},
        "lastName": {"column": "Name", "part": "last"},
        "email": "Email",
        "phoneNumber": {"column": "Phone", "default_region": "FR"},
    },
    "mailchimp.csv": {
        "externalId": "Email Address",
        "firstName": "First Name",
        "lastName": "Last Name",
        "email": "Email Address",
        "phoneNumber": {"column": "Phone Number", "default_region": "US"},
    },
    "legacy_crm_de.csv": {
        "externalId": "Kundennummer",
        "firstName": "Vorname",
        "lastName": "Nachname",
        "email": "E-Mail",
        "phoneNumber": {"column": "Mobil", "default_region": "DE"},
        "active": {"column": "Status", "true": ["aktiv"], "false": ["inaktiv"]},
        EMAIL: {"column": "Newsletter", "true": ["ja"], "false": ["nein"]},
        PHONE: {"column": "Nicht anrufen", "invert": True, "true": ["ja"], "false": ["nein"]},
    },
    "clientes_es.csv": {
        "externalId": "ID Cliente",
        "firstName": "Nombre",
        "lastName": "Apellidos",
        "email": "Correo electrónico",
        "phoneNumber": {"column": "Teléfono", "default_region": "ES"},
        "active": {"column": "Activo", "true": ["Sí"]},
        EMAIL: {"column": "Acepta publicidad", "true": ["Sí"]},
        PHONE: {"column": "No llamar", "invert": True, "true": ["Sí"]},
    },
    "clients_fr.csv": {
        "externalId": "Code client",
        "firstName": "Prénom",
        "lastName": "Nom",
        "email": "Courriel",
        "phoneNumber": {"column": "Téléphone portable", "default_region": "FR"},
        "active": {"column": "Actif", "true": ["Oui"], "false": ["Non"]},
        EMAIL: {"column": "Désabonné", "invert": True, "true": ["Oui"], "false": ["Non"]},
        PHONE: {"column": "Ne pas appeler", "invert": True, "true": ["Oui"], "false": ["Non"]},
    },
    "headerless.csv": {
        "externalId": 1,
        "firstName": 2,
        "lastName": 3,
        "email": 4,
        "phoneNumber": {"column": 5, "default_region": "PT"},
    },
    "typed_export.parquet": {
        "externalId": "customer_id",
        "firstName": "first_name",
        "lastName": "last_name",
        "email": "email",
        "phoneNumber": {"column": "phone", "default_region": "NL"},
        "active": "is_active",
        EMAIL: {"column": "email_opt_out", "invert": True},
    },
}
NO_ID_COLUMN = {"shopify_legacy.csv", "woocommerce.csv", "mailchimp.csv", "headerless.csv"}


def test_every_fixture_has_its_expectations() -> None:
    assert {p.name for p in FIXTURES.iterdir()} == set(EXPECTED)


def assert_maps(job: JobConfig, expected: dict[str, Any]) -> None:
    fields = job.mapping.fields
    assert set(fields) == set(expected)
    for target, want in expected.items():
        want = want if isinstance(want, dict) else {"column": want}
        got: FieldMapping = fields[target]
        assert (got.column, got.default_region, got.invert, got.part) == (
            want["column"],
            want.get("default_region"),
            want.get("invert", False),
            want.get("part"),
        ), target
        assert (got.true, got.false) == (want.get("true", []), want.get("false", [])), target


def chosen(job_file: Path) -> Path:
    """The job file with its offered lines taken, as a user who agrees would edit it."""
    text = job_file.read_text(encoding="utf-8").replace("\n# externalId = ", "\nexternalId = ")
    job_file.write_text(text, encoding="utf-8")
    return job_file


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_init_maps_the_fields_of_each_fixture(tmp_path: Path, fixture: str) -> None:
    result = init_job(FIXTURES / fixture, tmp_path / "job.toml")
    assert result.ready == (fixture not in NO_ID_COLUMN)
    if not result.ready:
        with pytest.raises(ConfigError, match="externalId"):
            load_job(result.path)
        chosen(result.path)
    assert_maps(load_job(result.path), EXPECTED[fixture])


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_every_column_is_mapped_or_listed_as_unmapped(tmp_path: Path, fixture: str) -> None:
    result = init_job(FIXTURES / fixture, tmp_path / "job.toml")
    text = result.path.read_text(encoding="utf-8")
    mapped = {f.column for f in result.draft.fields}
    for column in result.draft.sample.columns:
        assert column in mapped or f"#   {column.shown}" in text, column.shown


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_the_command_writes_the_job_then_prints_its_check(
    tmp_path: Path, fixture: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["init", str(FIXTURES / fixture), "--out", str(tmp_path / "job.toml")])
    out = capsys.readouterr().out
    assert code in (ExitCode.OK, ExitCode.REJECTS)
    assert f"wrote {tmp_path / 'job.toml'}" in out
    if fixture in NO_ID_COLUMN:  # nothing to check until the id is chosen
        assert code == ExitCode.REJECTS and "records:" not in out
        assert "next: make the choices at the top of" in out
    else:
        assert "records:" in out and "externalId:" in out and "next: " in out


def test_a_job_without_an_id_says_so_at_the_top_and_offers_the_email(tmp_path: Path) -> None:
    result = init_job(FIXTURES / "woocommerce.csv", tmp_path / "job.toml")
    head = result.path.read_text(encoding="utf-8").split("\nname = ")[0]
    assert "NO ID COLUMN" in head and "offered below, commented out" in head
    assert '\n# externalId = "Email"' in result.path.read_text(encoding="utf-8")


# The sample files and the jobs written for them by hand: the drafted job must give the same
# outcome for every record, with no hand edit.
SAMPLES = [
    ("customers.csv", "crm_migration.toml"),
    ("customers_with_problems.csv", "demo.toml"),
    ("backfill_names.csv", "backfill.toml"),
    ("customers.parquet", "nightly_sync.toml"),
]


Rows = list[tuple[str, str, str]]


def dry_run(job: JobConfig, out: Path) -> tuple[Rows, Rows]:
    """(row, externalId, status) of results.csv and (row, stage, reason) of rejects.csv."""
    report = run_job(job, RunOptions(dry_run=True, restart=True, mode="full", out_dir=out))
    assert report.exit_code in (ExitCode.OK, ExitCode.REJECTS)
    with (out / "results.csv").open(encoding="utf-8") as f:
        results = [(r["row"], r["externalId"], r["status"]) for r in csv.DictReader(f)]
    with (out / "rejects.csv").open(encoding="utf-8") as f:
        rejects = [(r["_row"], r["_stage"], r["_reason"]) for r in csv.DictReader(f)]
    return results, rejects


def by_column(job: JobConfig) -> dict[str, tuple[Any, ...]]:
    """The column-fed fields and how each reads its column (constants left out)."""
    return {
        target: (
            spec.column,
            spec.default_region,
            spec.invert,
            spec.part,
            {w.lower() for w in spec.true},
            {w.lower() for w in spec.false},
        )
        for target, spec in job.mapping.fields.items()
        if spec.column is not None
    }


@pytest.mark.parametrize(("sample", "reference"), SAMPLES)
def test_init_imports_the_sample_files_as_their_jobs_do(
    tmp_path: Path, sample: str, reference: str
) -> None:
    made = load_job(init_job(ROOT / "sample_data" / sample, tmp_path / "made.toml").path)
    ref = load_job(ROOT / "jobs" / reference)
    ref = ref.model_copy(update={"output": ref.output.model_copy(update={"state_dir": tmp_path})})
    assert by_column(made) == by_column(ref)
    results, rejects = dry_run(made, tmp_path / "made")
    assert (results, rejects) == dry_run(ref, tmp_path / "ref")
    assert any(status == "valid" for _, _, status in results)


def test_it_refuses_to_overwrite_a_file_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job.toml"
    job.write_text("mine", encoding="utf-8")
    assert cli.main(["init", str(FIXTURES / "stripe.csv"), "--out", str(job)]) == 2
    assert job.read_text(encoding="utf-8") == "mine"
    assert cli.main(["init", str(FIXTURES / "stripe.csv"), "--out", str(job), "--force"]) in (0, 1)
    assert load_job(job).mapping.fields["externalId"].column == "id"


def test_gzipped_export_and_default_out_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exports").mkdir()
    with (tmp_path / "exports" / "clients_fr.csv.gz").open("wb") as f:
        f.write(gzip.compress((FIXTURES / "clients_fr.csv").read_bytes()))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["init", "exports/clients_fr.csv.gz"]) in (0, 1)
    job = load_job(tmp_path / "clients_fr.toml")
    assert job.source.path == tmp_path / "exports" / "clients_fr.csv.gz"
    assert_maps(job, EXPECTED["clients_fr.csv"])


def test_a_secret_is_never_mapped_and_never_reaches_the_rejects(tmp_path: Path) -> None:
    export = tmp_path / "legacy.csv"
    export.write_text(
        "Customer ID,First Name,Password,Login Token\n"
        "1,Ada,ada@example.com,t0k3n\n2,Alan,alan@example.com,t0k3n2\n",
        encoding="utf-8",
    )
    job = load_job(init_job(export, tmp_path / "job.toml").path)
    assert "email" not in job.mapping.fields  # the only email-like values are in "Password"
    assert {"Password", "Login Token"} <= set(job.source.drop_columns)


def test_odd_header_names_are_quoted_and_commented_safely(tmp_path: Path) -> None:
    export = tmp_path / "odd.csv"
    export.write_text(
        'Customer ID,First Name,"Say ""hi"" \\ now","Notes\nInternal",E-Mail\n'
        "1,Ada,x,y,ada@example.com\n",
        encoding="utf-8",
    )
    job = load_job(init_job(export, tmp_path / "job.toml").path)
    assert job.mapping.fields["email"].column == "E-Mail"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("E-Mail", "email"),
        ("Teléfono", "TELEFONO"),
        ("Prénom", "prenom"),
        ("Nº Cliente", "no cliente"),
        ("Straße", "STRASSE"),
        ("first_name", "First Name"),
    ],
)
def test_names_compare_without_case_accents_or_punctuation(a: str, b: str) -> None:
    assert normalise(a) == normalise(b)


_VALUES = {
    "externalId": ("C-1", "C-2"),
    "firstName": ("Ana", "Bruno"),
    "lastName": ("Sousa", "Costa"),
    "email": ("ana@example.com", "bruno@example.com"),
    "phoneNumber": ("+49 30 1234567", "+49 30 7654321"),
    "active": ("yes", "no"),
    EMAIL: ("yes", "no"),
    PHONE: ("yes", "no"),
}


def one_column(name: str, values: tuple[str, ...]) -> Sample:
    column = Column(name, name, values)
    return Sample("export.csv", "utf-8", ",", True, (column,), len(values), {})


@pytest.mark.parametrize(
    ("name", "target", "invert"),
    [
        ("E-Mail", "email", False),
        ("Courriel", "email", False),
        ("Correo electrónico", "email", False),
        ("Posta elettronica", "email", False),
        ("Endereço de e-mail", "email", False),
        ("Vorname", "firstName", False),
        ("Nombre", "firstName", False),
        ("Prénom", "firstName", False),
        ("Nome", "firstName", False),
        ("Primeiro nome", "firstName", False),
        ("Nachname", "lastName", False),
        ("Apellido", "lastName", False),
        ("Nom", "lastName", False),
        ("Cognome", "lastName", False),
        ("Sobrenome", "lastName", False),
        ("Teléfono", "phoneNumber", False),
        ("Telefone", "phoneNumber", False),
        ("Handy", "phoneNumber", False),
        ("Cellulare", "phoneNumber", False),
        ("Default Address Phone", "phoneNumber", False),
        ("Kundennummer", "externalId", False),
        ("Nº Cliente", "externalId", False),
        ("Codice cliente", "externalId", False),
        ("ListID", "externalId", False),
        ("Aktiv", "active", False),
        ("Statut", "active", False),
        ("Accepts Email Marketing", EMAIL, False),
        ("HasOptedOutOfEmail", EMAIL, True),
        ("Unsubscribed", EMAIL, True),
        ("DoNotCall", PHONE, True),
        ("Nicht anrufen", PHONE, True),
        ("No llamar", PHONE, True),
        ("SMS Opt-In", PHONE, False),
    ],
)
def test_column_names_of_common_exports_and_languages(name: str, target: str, invert: bool) -> None:
    field = draft(one_column(name, _VALUES[target])).field(target)
    assert field is not None and field.column.name == name
    assert bool(field.options.get("invert")) == invert


@pytest.mark.parametrize("name", ["Card ID", "Business VAT ID", "Username", "Customer"])
def test_an_id_is_never_taken_from_a_name_that_is_not_one(name: str) -> None:
    drafted = draft(one_column(name, ("a1", "b2")))
    assert drafted.field("externalId") is None and not drafted.ready
    assert any("NO ID COLUMN" in line for line in drafted.attention)


def test_a_first_name_column_holding_whole_names_is_split() -> None:
    drafted = draft(one_column("Nome", ("Ana Sousa", "Bruno Miguel Costa")))
    first, last = drafted.field("firstName"), drafted.field("lastName")
    assert first is not None and first.options == {"part": "first"}
    assert last is not None and last.options == {"part": "last"}


def test_a_status_column_of_other_words_is_not_mapped_as_a_boolean() -> None:
    drafted = draft(one_column("Estado", ("Jalisco", "Nuevo León", "Jalisco")))
    assert drafted.field("active") is None
    assert "not a yes/no column" in {c.name: a for c, a in drafted.unmapped}["Estado"]


@pytest.mark.parametrize(
    ("values", "invert", "true", "false", "unknown"),
    [
        (["Active", "Inactive", "Pending"], False, ["Active"], ["Inactive"], ["Pending"]),
        (["subscribed", "unsubscribed"], False, ["subscribed"], ["unsubscribed"], []),
        (["subscribed", "unsubscribed"], True, ["unsubscribed"], ["subscribed"], []),
        (["ja", "nein", "ja"], True, ["ja"], ["nein"], []),
        (["Sí", "No"], False, ["Sí"], [], []),
        (["Oui", "OUI", "Non"], False, ["Oui"], ["Non"], []),
        (["yes", "no", "1", "0", "TRUE"], False, [], [], []),
    ],
)
def test_boolean_words_come_from_the_values(
    values: list[str], invert: bool, true: list[str], false: list[str], unknown: list[str]
) -> None:
    words = vocabulary(values, invert)
    assert (list(words.true), list(words.false), list(words.unknown)) == (true, false, unknown)


@pytest.mark.parametrize(
    ("phones", "countries", "languages", "region"),
    [
        (["(212) 555-0101", "+44 20 7946 0104", "+1 650 555 0107"], [], [], "US"),
        (["+44 7911 123456", "+44 20 7946 0104"], [], [], "GB"),
        (["030 1234567", "+43 664 1234567"], ["Deutschland", "Deutschland", "AT"], [], "DE"),
        (["612 345 678", "91 123 45 67"], [], ["es"], "ES"),
        (["06 12 34 56 78"], ["France", "Belgique"], [], "FR"),
        (["0412 345 678", "0423 456 789"], [], [], "AU"),
    ],
)
def test_default_region_comes_from_what_the_file_says(
    phones: list[str], countries: list[str], languages: list[str], region: str
) -> None:
    choice = choose_region(phones, evidence(phones, countries, '"Country"', languages))
    assert choice.region == region and choice.why


def test_fixture_files_are_small() -> None:
    assert all(p.stat().st_size < 8_000 for p in FIXTURES.iterdir())
