"""The whole job against the real sandbox on a loopback port: what lands, what is reported."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from customer_import.config import MappingConfig
from customer_import.contracts import ROW, Batch, RecordStatus, ResultRow, RunReport
from customer_import.errors import ConfigError
from customer_import.outputs.summary import summary_json
from customer_import.record.journal import Journal
from customer_import.record.opening import run_fingerprint
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.sandbox.testing import SandboxServer
from customer_import.source.csv_file import _CsvBackend
from customer_import.transform.duplicates import RepeatedIdFinder
from customer_import.transform.mapping import plan_mapping
from customer_import.transform.prepare import pre_pass
from tests.conftest import (
    API_KEY,
    CREDENTIALS,
    assert_conservation,
    load,
    read_csv,
    read_summary,
    write_csv,
    write_job,
)

MIXED = (
    "C-1, Ada ,Lovelace,ADA@Example.COM,(212) 555-0101,Active,no",  # valid, normalised
    "C-2,Grace,Hopper,grace@example.com,+44 20 7946 0018,Inactive,yes",  # valid
    "C-3,Alan,Turing,not-an-email,,Active,",  # invalid email
    "C-4,,Nameless,,,,",  # missing firstName
    "C-5,Edsger,Dijkstra,,1234,Active,",  # invalid phone
    "C-2,Grace,Hopper,grace.hopper@example.com,,Active,no",  # duplicate: this one wins
    "C-6,Barbara,Liskov,,,Maybe,",  # unknown boolean word
)


def run(job_path: Path, sandbox: SandboxServer | None = None, **options: object) -> RunReport:
    base: dict[str, object] = {"environ": CREDENTIALS}
    if sandbox is not None:
        base["base_url"] = sandbox.base_url
    return run_job(load(job_path), RunOptions(**{**base, **options}))  # type: ignore[arg-type]


def mixed_job(tmp_path: Path, *lines: str, extra: str = "max_invalid_ratio = 1.0") -> Path:
    return write_job(tmp_path, write_csv(tmp_path / "in.csv", *(lines or MIXED)), extra=extra)


def test_valid_records_land_normalised_and_every_record_is_accounted_for(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    report = run(mixed_job(tmp_path), sandbox)

    assert report.status == "completed"
    assert_conservation(tmp_path / "out", 7)
    stored = {c["externalId"]: c for c in sandbox.customers()}
    assert sorted(stored) == ["C-1", "C-2"]
    ada = stored["C-1"]
    assert (ada["firstName"], ada["email"], ada["phoneNumber"]) == (
        "Ada",
        "ADA@example.com",
        "+12125550101",
    )
    assert ada["active"] is True
    assert ada["notificationOptions"] == {"notifyEmail": True}  # opt-out "no" -> opted in
    assert stored["C-2"]["email"] == "grace.hopper@example.com"  # the last record won
    summary = read_summary(tmp_path / "out")
    assert (summary["created"], summary["duplicate"], summary["rejected"]) == (2, 1, 4)
    assert summary["requests"] == 2


def test_rejects_file_keeps_source_columns_and_explains_each_record(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    run(mixed_job(tmp_path), sandbox)

    rejects = {r["_row"]: r for r in read_csv(tmp_path / "out" / "rejects.csv")}
    assert set(rejects) == {"3", "4", "5", "7"}
    assert rejects["3"]["email"] == "not-an-email"
    assert rejects["3"]["_stage"] == "validation"
    assert rejects["3"]["_reason"].startswith("email: 'not-an-email' is not a valid email address")
    assert rejects["4"]["_reason"] == "firstName: required, but empty"
    assert "'1234' is not a valid phone number" in rejects["5"]["_reason"]
    assert "'Maybe' is not a yes/no value" in rejects["7"]["_reason"]
    results = {r["row"]: r for r in read_csv(tmp_path / "out" / "results.csv")}
    assert results["2"]["status"] == "duplicate"
    assert results["2"]["detail"] == "superseded by record 6"


def test_second_run_updates_and_keeps_created_at(tmp_path: Path, sandbox: SandboxServer) -> None:
    job = mixed_job(tmp_path)
    run(job, sandbox)
    first = {r["externalId"]: r for r in read_csv(tmp_path / "out" / "results.csv")}

    report = run(job, sandbox)

    second = {
        r["externalId"]: r
        for r in read_csv(tmp_path / "out" / "results.csv")
        if r["status"] != "duplicate"
    }
    assert report.summary.count(RecordStatus.UPDATED) == 2
    assert {r["status"] for r in second.values()} == {"updated"}
    assert second["C-1"]["created_at"] == first["C-1"]["created_at"]
    assert_conservation(tmp_path / "out", 7)


def test_empty_optional_field_does_not_clear_the_stored_value(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    run(mixed_job(tmp_path, "C-1,Ada,Lovelace,ada@example.com,,,"), sandbox)
    run(mixed_job(tmp_path, "C-1,Ada,King,,,,"), sandbox)

    stored = sandbox.get("C-1")
    assert stored is not None
    assert (stored["lastName"], stored["email"]) == ("King", "ada@example.com")


@pytest.mark.parametrize(
    ("mode", "sent_email", "statuses"),
    [
        ("last", "third@example.com", {"1": "duplicate", "2": "duplicate", "3": "created"}),
        ("first", "first@example.com", {"1": "created", "2": "duplicate", "3": "duplicate"}),
    ],
)
def test_repeated_id_sends_one_record(
    tmp_path: Path, sandbox: SandboxServer, mode: str, sent_email: str, statuses: dict[str, str]
) -> None:
    lines = (
        "D-1,A,B,first@example.com,,,",
        " D-1 ,A,B,second@example.com,,,",  # the same id once trimmed
        "D-1,A,B,third@example.com,,,",
    )
    run(
        mixed_job(tmp_path, *lines, extra=f'duplicates = "{mode}"\nmax_invalid_ratio = 1.0'),
        sandbox,
    )

    assert sandbox.stats()["requests_total"] == 1
    assert sandbox.get("D-1")["email"] == sent_email  # type: ignore[index]
    results = {r["row"]: r["status"] for r in read_csv(tmp_path / "out" / "results.csv")}
    assert results == statuses
    assert_conservation(tmp_path / "out", 3)


def test_repeated_id_whose_last_record_is_invalid_sends_nothing(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    run(mixed_job(tmp_path, "D-1,A,B,good@example.com,,,", "D-1,A,B,bad@,,,"), sandbox)

    assert sandbox.customers() == []
    assert read_csv(tmp_path / "out" / "results.csv")[0]["status"] == "duplicate"
    reject = read_csv(tmp_path / "out" / "rejects.csv")[0]
    assert (reject["_row"], reject["_stage"]) == ("2", "validation")
    assert_conservation(tmp_path / "out", 2)


def test_duplicates_reject_mode_rejects_every_record_of_the_id(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    lines = ("D-1,A,B,,,,", "E-1,C,D,,,,", "D-1,A,B,,,,")
    run(
        mixed_job(tmp_path, *lines, extra='duplicates = "reject"\nmax_invalid_ratio = 1.0'), sandbox
    )

    rejects = read_csv(tmp_path / "out" / "rejects.csv")
    assert [(r["_row"], r["_stage"]) for r in rejects] == [("1", "duplicate"), ("3", "duplicate")]
    assert "appears in records 1, 3" in rejects[0]["_reason"]
    assert [c["externalId"] for c in sandbox.customers()] == ["E-1"]
    assert_conservation(tmp_path / "out", 3)


def test_dry_run_sends_nothing_and_needs_no_credentials(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    report = run(mixed_job(tmp_path), sandbox, dry_run=True, environ={})

    assert sandbox.stats()["requests_total"] == 0
    assert report.summary.count(RecordStatus.VALID) == 2
    assert report.summary.dry_run is True
    assert_conservation(tmp_path / "out", 7)


def test_missing_credentials_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CUSTOMERS_MERCHANT_ID"):
        run(mixed_job(tmp_path), environ={"CUSTOMERS_API_KEY": "k"})


def test_mapping_a_missing_column_is_a_configuration_error_before_sending(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    source = write_csv(tmp_path / "in.csv", "1,a", header="id,first")
    with pytest.raises(ConfigError, match=r"'last'.*its columns are: 'id', 'first'"):
        run(write_job(tmp_path, source), sandbox)
    assert sandbox.stats()["requests_total"] == 0


def test_revoked_key_aborts_with_unsent_records_pending_then_resume_completes(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = mixed_job(tmp_path)
    sandbox.revoke_key()

    aborted = run(job, sandbox)

    assert aborted.status == "aborted"
    assert "CUSTOMERS_API_KEY" in (aborted.message or "")
    assert aborted.summary.pending == 2  # the two valid records: not rejected, not lost
    sandbox.reset()  # the key is valid again and no customer is stored: as on a new server
    resumed = run(job, sandbox, resume=True)
    assert resumed.status == "completed"
    assert sorted(c["externalId"] for c in sandbox.customers()) == ["C-1", "C-2"]
    assert_conservation(tmp_path / "out", 7)
    # The resume's pace counts the two records it did, not the five done before it.
    summary = summary_json(resumed.summary)
    assert summary["this_attempt"]["records"] == 2
    attempt = summary["this_attempt"]
    assert round(attempt["rows_per_s"] * attempt["duration_s"]) == 2
    # The top-level request figures and timings are the whole run's: both attempts'.
    first = aborted.summary
    assert (first.attempts, summary["attempts"]) == (1, 2)
    assert first.requests >= 1 and attempt["requests"] == 2
    assert summary["requests"] == first.requests + 2
    assert summary["duration_s"] == round(first.duration_s + attempt["duration_s"], 3)
    assert summary["started_at"] <= first.this_attempt.finished_at <= attempt["started_at"]
    assert summary["latency_ms"]["p99"] >= attempt["latency_ms"]["p50"]


def test_a_run_that_stops_while_a_batch_is_being_read_ends_cleanly_and_resumes(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reading thread is mid-batch when the 401 stops the run: the run waits for it
    before closing the file, reports the stop, and leaves no thread behind."""
    lines = [f"C-{i},Ada,Lovelace,,,Active,no" for i in range(1, 3_001)]
    job = mixed_job(tmp_path, *lines)
    batches = _CsvBackend.batches

    def slow_batches(
        self: _CsvBackend, select: list[int], names: list[str], first: int | None
    ) -> Iterator[Batch]:
        for k, batch in enumerate(batches(self, select, names, first)):
            if k or first is None:  # the batches after the first (1,000) and the pre-pass
                time.sleep(0.3)
            yield batch

    monkeypatch.setattr(_CsvBackend, "batches", slow_batches)
    sandbox.revoke_key()
    before = set(threading.enumerate())

    aborted = run(job, sandbox)

    assert aborted.status == "aborted"
    assert aborted.summary.pending == 3_000
    assert set(threading.enumerate()) <= before
    sandbox.reset()  # the key is valid again: as on a new server
    assert run(job, sandbox, resume=True).status == "completed"
    assert_conservation(tmp_path / "out", 3_000)


def test_on_unfinished_refuse_asks_for_resume_or_restart(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = mixed_job(tmp_path, extra='max_invalid_ratio = 1.0\non_unfinished = "refuse"')
    sandbox.revoke_key()
    run(job, sandbox)

    with pytest.raises(ConfigError, match=r"--resume.*--restart"):
        run(job, sandbox)
    restarted = run(job, sandbox, restart=True, dry_run=True, environ={})
    assert restarted.status == "completed"


def test_resume_is_refused_when_the_input_changed(tmp_path: Path, sandbox: SandboxServer) -> None:
    job = mixed_job(tmp_path)
    sandbox.revoke_key()
    run(job, sandbox)
    write_csv(tmp_path / "in.csv", *MIXED, "C-9,New,Row,,,,")

    with pytest.raises(ConfigError, match="input file changed"):
        run(job, sandbox, resume=True)


def test_an_unfinished_run_of_an_earlier_version_or_another_batch_size_is_resumed(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """batch_size changes neither record numbers nor outcomes: it is not part of what a resume
    compares. A journal an earlier version started (batch_size in its fingerprint, 10,000 by
    default then) is resumed, not abandoned."""
    job_path = mixed_job(tmp_path)
    job = load(job_path)
    bigger = job.model_copy(update={"source": job.source.model_copy(update={"batch_size": 2})})
    fingerprint = run_fingerprint(job, dry_run=False, shard=None)
    assert run_fingerprint(bigger, dry_run=False, shard=None).now == fingerprint.now
    sandbox.revoke_key()
    assert run(job_path, sandbox).status == "aborted"
    with Journal(tmp_path / "out" / "journal.sqlite") as journal:
        journal.set_meta(job=fingerprint.earlier)  # as an earlier version wrote it
    sandbox.reset()
    resumed = run(job_path, sandbox, resume=True)
    assert resumed.status == "completed"
    assert_conservation(tmp_path / "out", 7)


def test_server_errors_are_retried_then_rejected_with_stage_transport(tmp_path: Path) -> None:
    with SandboxServer(
        api_key=API_KEY, merchant_id="test-merchant", fail_rate=1.0, seed=1
    ) as failing:
        report = run(mixed_job(tmp_path, "C-1,Ada,L,,,,"), failing)
        assert failing.stats()["requests_total"] == 3  # max_attempts
        assert failing.customers() == []

    reject = read_csv(tmp_path / "out" / "rejects.csv")[0]
    assert reject["_stage"] == "transport"
    assert reject["_reason"].startswith("HTTP 50") and "after 3 attempts" in reject["_reason"]
    assert reject["id"] == "C-1"  # the source values are filled in from the file
    assert report.summary.retries == 2
    assert_conservation(tmp_path / "out", 1)


def test_concurrency_bound_is_never_exceeded(tmp_path: Path) -> None:
    lines = [f"N-{i},First,Last,,,," for i in range(40)]
    with SandboxServer(api_key=API_KEY, merchant_id="test-merchant", latency_ms=20) as slow:
        report = run(mixed_job(tmp_path, *lines), slow, concurrency=3)
        assert slow.stats()["max_in_flight"] <= 3
    assert report.summary.max_in_flight == 3
    assert_conservation(tmp_path / "out", 40)


def test_wrong_base_url_path_aborts_the_run(tmp_path: Path, sandbox: SandboxServer) -> None:
    report = run(mixed_job(tmp_path), None, base_url=sandbox.base_url + "/v9")

    assert report.status == "aborted"
    assert "base_url" in (report.message or "")


def test_parquet_input_gives_the_same_customers_as_csv(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    frame = pl.DataFrame(
        {
            "id": [101, 102],
            "first": ["Ada", "Grace"],
            "last": ["Lovelace", None],
            "email": ["ada@example.com", None],
            "phone": ["+12125550101", None],
            "status": ["Active", "Inactive"],
            "email_opt_out": [False, True],
        }
    )
    frame.write_parquet(tmp_path / "in.parquet")
    run(write_job(tmp_path, tmp_path / "in.parquet"), sandbox)

    stored = {c["externalId"]: c for c in sandbox.customers()}
    assert sorted(stored) == ["101", "102"]  # never "101.0"
    assert stored["102"]["notificationOptions"] == {"notifyEmail": False}
    assert_conservation(tmp_path / "out", 2)


def test_rejects_file_can_be_fixed_and_fed_back(tmp_path: Path, sandbox: SandboxServer) -> None:
    job = mixed_job(tmp_path)
    run(job, sandbox)
    rejects = (tmp_path / "out" / "rejects.csv").read_text(encoding="utf-8")
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(rejects.replace("not-an-email", "alan@example.com"), encoding="utf-8")

    report = run(job, sandbox, input=fixed, out_dir=tmp_path / "again")

    assert report.summary.count(RecordStatus.CREATED) == 1
    assert sandbox.get("C-3")["email"] == "alan@example.com"  # type: ignore[index]
    assert_conservation(tmp_path / "again", 4)
    header = (tmp_path / "again" / "rejects.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == (
        "id,first,last,email,phone,status,email_opt_out,source_row,source_file,"
        "_row,_stage,_reason,_raw"
    )


def test_the_api_key_appears_in_no_output(
    tmp_path: Path, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    run(mixed_job(tmp_path), sandbox)
    sandbox.revoke_key()
    run(mixed_job(tmp_path), sandbox, out_dir=tmp_path / "aborted")

    outputs = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert outputs
    for path in outputs:
        assert API_KEY.encode() not in path.read_bytes(), path
    assert API_KEY not in caplog.text


def test_mostly_invalid_first_records_stop_the_run_before_sending(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    lines = [f"G-{i},First,Last,bad-email-{i},,," for i in range(6)] + ["G-9,First,Last,,,,"] * 1
    job = write_job(tmp_path, write_csv(tmp_path / "in.csv", *lines))

    report = run(job, sandbox)

    assert report.status == "aborted"
    assert sandbox.stats()["requests_total"] == 0
    assert "6 of the first 7 records are invalid" in (report.message or "")
    assert "email: … is not a valid email address (6x)" in (report.message or "")
    assert "bad-email" not in (report.message or "")  # reasons are summarised without values
    # Nothing was sent, so the next run starts afresh without --resume.
    assert run(job, sandbox, dry_run=True, environ={}).status == "completed"


def test_repeated_ids_are_found_when_the_id_hashes_spill_to_disk(tmp_path: Path) -> None:
    from customer_import.transform.duplicates import id_hashes

    finder = RepeatedIdFinder(tmp_path / "spill", budget=5)
    for chunk in (["a", "b", "c"], ["d", "a", None], ["e", "f", "g", "d"], ["h"]):
        finder.add(id_hashes(pl.Series(chunk, dtype=pl.String)))
    expected = id_hashes(pl.Series(["a", "d"])).sort().to_list()
    assert finder.repeated().sort().to_list() == expected
    assert any((tmp_path / "spill").iterdir())  # it did spill


def test_repeated_hashes_on_the_edge_of_a_bucket_stay_in_one_bucket(tmp_path: Path) -> None:
    """A bucket is a hash's top bits: hashes equal to a bucket's first value are cut before
    all of them, whichever spill they are in."""
    edges = [bucket << 60 for bucket in range(RepeatedIdFinder.BUCKETS)]
    finder = RepeatedIdFinder(tmp_path / "spill", budget=40)
    for chunk in (edges * 3, [5, 6, *edges], [edges[3], 7]):
        finder.add(pl.Series(chunk, dtype=pl.UInt64))
    assert finder.repeated().sort().to_list() == edges


def test_frequent_double_encoded_text_is_imported_as_read_and_warned_about(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    lines = [f"M-{i},Ren√©,PÃ©rez,,,," for i in range(3)] + ["M-9,Ana,Lopez,,,,"]
    report = run(mixed_job(tmp_path, *lines), sandbox)

    assert sandbox.get("M-0")["lastName"] == "PÃ©rez"  # type: ignore[index]
    warnings = report.summary.warnings
    assert [w.split(":")[0] for w in warnings] == ["firstName", "lastName"]
    assert warnings[1].startswith("lastName: 3 of 4 values look double-encoded")


def test_a_record_left_without_an_outcome_stops_the_run_as_resumable(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault that loses an outcome (the journal never gets it) must not end in 'completed'."""
    job = mixed_job(tmp_path)
    add_result = Journal.add_result

    def lose_row_1(self: Journal, row: ResultRow) -> None:
        if row.row != 1:
            add_result(self, row)

    monkeypatch.setattr(Journal, "add_result", lose_row_1)
    lost = run(job, sandbox)

    assert lost.status == "aborted"
    assert (lost.message or "").startswith("1 of 7 records have no outcome although the whole file")
    assert lost.summary.pending == 1
    monkeypatch.setattr(Journal, "add_result", add_result)
    resumed = run(job, sandbox, resume=True)
    assert resumed.status == "completed"
    assert_conservation(tmp_path / "out", 7)


def test_the_pre_pass_stops_at_the_next_batch_once_the_run_is_being_stopped(
    tmp_path: Path,
) -> None:
    config = MappingConfig.model_validate({"externalId": "id", "firstName": "first"})
    plan = plan_mapping(config, ["id", "first"], ["id", "first"], [""])
    batches = (
        Batch(pl.DataFrame({ROW: [i], "id": [f"C-{i}"], "first": ["Ann"]}), [])
        for i in range(1, 11)
    )
    asked: list[bool] = []

    def stopping() -> bool:  # a Ctrl-C arrives while the fourth batch is counted
        asked.append(True)
        return len(asked) > 3

    assert pre_pass(batches, plan, tmp_path, stopping=stopping).records == 3
