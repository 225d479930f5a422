"""The operator's loop: every run's files kept under history/, the latest at the top; an
unfinished run resumed or closed as abandoned on its own; a fixed rejects file fed back with
the same job, whatever its encoding and delimiter, its records traced to where they first were."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from customer_import import cli
from customer_import.contracts import ExitCode
from customer_import.errors import ConfigError
from customer_import.record.history import History
from customer_import.sandbox.testing import SandboxServer
from tests.conftest import MAPPING, read_csv, read_summary, run_on, write_csv, write_job

VALID = ("C-1,Ada,Lovelace,ada@example.com,,Active,no", "C-2,Grace,Hopper,,,Inactive,")
INVALID = ("C-3,Alan,Turing,not-an-email,,Active,",)


run = run_on


def nightly(tmp_path: Path, *lines: str, extra: str = "") -> Path:
    source = write_csv(tmp_path / "export.csv", *lines)
    return write_job(tmp_path, source, extra=f"max_invalid_ratio = 1.0\n{extra}")


def test_a_run_id_is_the_start_time_and_never_given_twice(tmp_path: Path) -> None:
    history = History(tmp_path)
    moment = datetime(2026, 12, 4, 2, 15, tzinfo=UTC)
    ids = [history.new_run(moment) for _ in range(3)]
    assert ids == ["20261204T021500Z", "20261204T021500Z-2", "20261204T021500Z-3"]
    assert history.runs() == ids


def test_every_run_keeps_its_files_in_history_and_the_top_is_always_the_latest(
    tmp_path: Path,
) -> None:
    job = nightly(tmp_path, *VALID, *INVALID)
    first = run(job).summary.run_id
    out = tmp_path / "out"
    kept = {p.name: p.read_bytes() for p in (out / "history" / str(first)).iterdir()}
    assert {"results.csv", "rejects.csv", "summary.json", "journal.sqlite"} <= set(kept)
    assert not (out / "journal.sqlite").exists()  # a finished run's journal is in its folder
    edited = (out / "rejects.csv").read_text(encoding="utf-8") + "a note of mine\n"
    (out / "rejects.csv").write_text(edited, encoding="utf-8")
    write_csv(tmp_path / "export.csv", *VALID)  # the next night's export

    second = run(job).summary.run_id

    assert second != first
    assert History(out).runs() == [first, second]
    for name, content in kept.items():  # the earlier run's files, untouched
        assert (out / "history" / str(first) / name).read_bytes() == content, name
    latest = out / "history" / str(second)
    for name in ("results.csv", "rejects.csv", "summary.json"):
        assert (out / name).read_bytes() == (latest / name).read_bytes(), name
    assert read_summary(out)["run_id"] == second
    assert (latest / "replaced" / "rejects.csv").read_text(encoding="utf-8") == edited


def test_files_a_version_before_history_left_at_the_top_are_kept(tmp_path: Path) -> None:
    job = nightly(tmp_path, *VALID)
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"status": "completed"}\n', encoding="utf-8")
    (out / "missing.csv").write_text("externalId\nX-1\n", encoding="utf-8")

    run_id = run(job).summary.run_id

    replaced = out / "history" / str(run_id) / "replaced"
    assert sorted(p.name for p in replaced.iterdir()) == ["missing.csv", "summary.json"]
    assert not (out / "missing.csv").exists()  # the top is the latest run's, exactly
    assert read_summary(out)["run_id"] == run_id


def test_keep_runs_removes_the_oldest_run_folders(tmp_path: Path) -> None:
    job = nightly(tmp_path, *VALID)
    job.write_text(job.read_text(encoding="utf-8") + "keep_runs = 2\n", encoding="utf-8")
    ids = [run(job).summary.run_id for _ in range(3)]
    assert History(tmp_path / "out").runs() == ids[1:]


def test_a_failed_night_then_a_new_export_closes_it_as_abandoned_and_completes(
    tmp_path: Path, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    job = nightly(tmp_path, *VALID, *INVALID)
    sandbox.revoke_key()
    failed = run(job, sandbox)
    assert failed.exit_code == ExitCode.STOPPED
    sandbox.reset()  # the key works again
    write_csv(tmp_path / "export.csv", *VALID, "C-4,Edsger,Dijkstra,,,Active,")
    caplog.set_level(logging.INFO, logger="customer_import")

    night = run(job, sandbox)

    assert night.exit_code == ExitCode.OK
    assert night.summary.run_id != failed.summary.run_id
    assert sorted(c["externalId"] for c in sandbox.customers()) == ["C-1", "C-2", "C-4"]
    closed = tmp_path / "out" / "history" / str(failed.summary.run_id)
    summary = read_summary(closed)
    assert (summary["status"], summary["abandoned_by"]) == ("abandoned", night.summary.run_id)
    assert "the input file changed" in summary["message"]
    assert [r["row"] for r in read_csv(closed / "pending.csv")] == ["1", "2"]
    assert (closed / "journal.sqlite").exists()
    assert f"run {failed.summary.run_id} was closed as abandoned" in caplog.text


def test_a_failed_night_then_the_same_export_resumes_it(
    tmp_path: Path, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    job = nightly(tmp_path, *VALID, *INVALID)
    sandbox.revoke_key()
    failed = run(job, sandbox)
    sandbox.reset()
    with pytest.raises(ConfigError, match="a dry run does not abandon"):
        run(job)
    caplog.set_level(logging.INFO, logger="customer_import")

    night = run(job, sandbox)

    assert night.exit_code == ExitCode.REJECTS
    assert night.summary.run_id == failed.summary.run_id
    assert f"resuming run {failed.summary.run_id}" in caplog.text
    assert sandbox.stats()["requests_total"] == 2  # the two pending records, nothing else
    assert History(tmp_path / "out").runs() == [failed.summary.run_id]


SEMICOLON_JOB = f"""
name = "legacy"
max_invalid_ratio = 1.0
[source]
path = "export.csv"
encoding = "cp1252"
delimiter = ";"
{MAPPING}
[output]
dir = "out"
"""


def test_a_hand_fixed_rejects_file_goes_back_in_with_the_same_semicolon_cp1252_job(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    lines = [f"V-{i};Name{i};Last;;;Active;no" for i in range(1, 777)]
    lines.append("C-777;Chloé;Dupont;not-an-email;;Active;no")
    header = "id;first;last;email;phone;status;email_opt_out"
    (tmp_path / "export.csv").write_bytes("\n".join([header, *lines, ""]).encode("cp1252"))
    job = tmp_path / "job.toml"
    job.write_text(SEMICOLON_JOB, encoding="utf-8")
    out = tmp_path / "out"
    first = run(job)  # the night that rejected it: a dry run is enough here
    assert first.summary.rejected == 1
    original = (out / "rejects.csv").read_text(encoding="utf-8")
    assert "Chloé" in original
    (out / "rejects.csv").write_text(
        original.replace("not-an-email", "chloe@example.com"), encoding="utf-8"
    )

    refeed = run(job, sandbox, input=out / "rejects.csv")

    assert refeed.exit_code == ExitCode.OK
    assert sandbox.get("C-777")["firstName"] == "Chloé"  # type: ignore[index]
    [result] = read_csv(out / "results.csv")
    assert (result["row"], result["source_row"], result["source_file"]) == (
        "1",
        "777",
        "export.csv",
    )
    assert read_summary(out)["refeed_of"] == first.summary.run_id
    history = out / "history"
    assert (history / str(first.summary.run_id) / "rejects.csv").read_text(
        encoding="utf-8"
    ) == original
    fixed = history / str(refeed.summary.run_id) / "input" / "rejects.csv"
    assert "chloe@example.com" in fixed.read_text(encoding="utf-8")
    header = (out / "rejects.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.endswith(",source_row,source_file,_row,_stage,_reason,_raw")


def test_a_stopped_refeed_of_the_top_level_rejects_file_resumes_from_its_copy(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    job = nightly(tmp_path, *VALID, *INVALID, "C-4,Edsger,Dijkstra,,1234,Active,")
    out = tmp_path / "out"
    run(job)
    fixed = (out / "rejects.csv").read_text(encoding="utf-8")
    fixed = fixed.replace("not-an-email", "alan@example.com").replace(",1234,", ",,")
    (out / "rejects.csv").write_text(fixed, encoding="utf-8")
    sandbox.revoke_key()
    stopped = run(job, sandbox, input=out / "rejects.csv")  # writes its own rejects.csv on top
    assert stopped.exit_code == ExitCode.STOPPED
    sandbox.reset()

    resumed = run(job, sandbox, input=out / "rejects.csv")  # the same command again

    assert resumed.summary.run_id == stopped.summary.run_id
    assert resumed.exit_code == ExitCode.OK
    assert sorted(c["externalId"] for c in sandbox.customers()) == ["C-3", "C-4"]
    assert [r["source_row"] for r in read_csv(out / "results.csv")] == ["3", "4"]


def test_encoding_and_delimiter_flags_override_the_job_for_any_input(tmp_path: Path) -> None:
    job = nightly(tmp_path, *VALID)
    export = tmp_path / "other.txt"
    text = "id\tfirst\tlast\temail\tphone\tstatus\temail_opt_out\nC-9\tZoë\tX\t\t\tActive\t\n"
    export.write_bytes(text.encode("cp1252"))
    args = ["run", str(job), "--dry-run", "--no-progress", "--input", str(export)]

    assert cli.main([*args, "--encoding", "cp1252", "--delimiter", "tab"]) == ExitCode.OK
    summary = read_summary(tmp_path / "out")
    assert (summary["encoding"], summary["delimiter"], summary["valid"]) == ("cp1252", "\t", 1)
    assert cli.main([*args, "--delimiter", "#"]) == ExitCode.NOTHING_DONE
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["run_id"]
