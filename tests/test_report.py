"""What a run shows its operator besides the CSVs: report.html and the metrics file."""

from __future__ import annotations

import csv
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from customer_import.contracts import FORMULA_CHARS, REJECTS_TRAILER, RunReport
from customer_import.logs import mask, mask_value
from customer_import.outputs.files import sheet_safe
from customer_import.outputs.report import (
    EXAMPLES,
    REPORT_NAME,
    TOP_REASONS,
    reject_reasons,
)
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.send.stats import SendStats
from customer_import.send.timeline import Timeline
from tests.conftest import CREDENTIALS, load, write_csv, write_job
from tests.test_excel import write_xlsx

LINES = (
    "C-1,Ada,Lovelace,ada@example.com,,Active,no",
    "C-2,Grace,Hopper,,,Inactive,",
    "C-3,Alan,Turing,alan.turing@example,,Active,",  # an invalid email: shown masked only
    "C-4,,Nameless,,,,",  # no first name
)


def answers(*statuses: int) -> httpx.MockTransport:
    script: Iterator[int] = iter(statuses)

    def answer(request: httpx.Request) -> httpx.Response:  # a success echoes the customer
        return httpx.Response(next(script, statuses[-1]), content=request.content)

    return httpx.MockTransport(answer)


def run(tmp_path: Path, transport: httpx.MockTransport, **options: object) -> RunReport:
    job = write_job(
        tmp_path, write_csv(tmp_path / "in.csv", *LINES), extra="max_invalid_ratio = 1.0"
    )
    metrics_file = 'dir = "out"\nmetrics_file = "metrics/customer_import.prom"'
    job.write_text(job.read_text(encoding="utf-8").replace('dir = "out"', metrics_file))
    (tmp_path / "metrics").mkdir(exist_ok=True)
    run_options = RunOptions(environ=CREDENTIALS, concurrency=1, transport=transport, **options)  # type: ignore[arg-type]
    return run_job(load(job), run_options)


def metrics(tmp_path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (tmp_path / "metrics" / "customer_import.prom").read_text(encoding="utf-8")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_file_says_how_the_last_run_went_in_prometheus_text_format(
    tmp_path: Path,
) -> None:
    report = run(tmp_path, answers(201))

    found = metrics(tmp_path)
    job = ("job", "test-job")
    prefix = "customer_import_last_run_"
    assert found[(f"{prefix}status", (job, ("status", "completed")))] == 1
    assert found[(f"{prefix}status", (job, ("status", "aborted")))] == 0
    assert found[(f"{prefix}exit_code", (job,))] == 1  # completed with rejects
    assert found[(f"{prefix}records", (job, ("status", "created")))] == 2
    assert found[(f"{prefix}records", (job, ("status", "rejected")))] == 2
    assert found[(f"{prefix}requests", (job,))] == 2
    assert found[(f"{prefix}rate_limited", (job,))] == 0
    start = found[(f"{prefix}start_timestamp_seconds", (job,))]
    end = found[(f"{prefix}end_timestamp_seconds", (job,))]
    assert 1.7e9 < start <= end
    assert found[(f"{prefix}duration_seconds", (job,))] == report.summary.this_attempt.duration_s
    assert not list((tmp_path / "metrics").glob("*.prom.*"))  # written atomically: no tmp left


def test_a_stopped_run_writes_its_metrics_too(tmp_path: Path) -> None:
    run(tmp_path, answers(201, 401))

    found = metrics(tmp_path)
    job = ("job", "test-job")
    assert found[("customer_import_last_run_status", (job, ("status", "aborted")))] == 1
    assert found[("customer_import_last_run_exit_code", (job,))] == 3
    assert found[("customer_import_last_run_records", (job, ("status", "pending")))] == 1


class _Page(HTMLParser):
    """The page's text, and every attribute that could fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.fetching: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.fetching += [v or "" for k, v in attrs if k in ("src", "srcset", "data", "action")]
        if tag == "link":
            self.fetching.append(dict(attrs).get("href") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_html_is_one_self_contained_page_with_masked_examples(tmp_path: Path) -> None:
    run(tmp_path, answers(201))
    html = (tmp_path / "out" / REPORT_NAME).read_text(encoding="utf-8")

    page = _Page()
    page.feed(html)
    text = " ".join(page.text)
    assert page.fetching == [] and "default-src 'none'" in html  # fetches nothing
    assert "completed" in text and "Reject reasons" in text and "Field quality" in text
    assert "validation: email: … is not a valid email" in text  # reasons grouped by kind
    assert "a***@example" in text and "alan.turing" not in html  # examples masked
    assert "firstName: required, but empty" in text
    assert page.tags.count("svg") >= 3  # reasons, requests a second, latency (+ field bars)
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert hrefs == ["results.csv", "rejects.csv", "summary.json"]


def test_a_dry_runs_report_says_nothing_was_sent(tmp_path: Path) -> None:
    run(tmp_path, answers(500), dry_run=True)
    html = (tmp_path / "out" / REPORT_NAME).read_text(encoding="utf-8")
    assert "a dry run sends nothing" in html


def test_the_timeline_keeps_a_bounded_number_of_points_whatever_the_runs_length() -> None:
    stats, timeline = SendStats(), Timeline(max_points=10)
    for second in range(1, 101):
        stats.requests += 5
        stats.latency.add(float(second))
        timeline.sample(stats, now=float(second))

    points = timeline.points
    assert len(points) <= 10
    assert sum(p.requests for p in points) == 500  # merging loses no request
    assert points[-1].start_s + points[-1].span_s == 100
    assert all(p.per_s == pytest.approx(5) for p in points)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (.ci/run installs it)")
def test_report_html_renders_in_a_headless_browser(tmp_path: Path) -> None:
    run(tmp_path, answers(201))
    assert CHROMIUM is not None
    page = tmp_path / "out" / REPORT_NAME
    shown = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'browser'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "<h2>Reject reasons</h2>" in shown and "<h2>Field quality</h2>" in shown
    assert shown.count('class="bar"') == 2  # the two reasons, drawn
    assert 'aria-label="requests a second"' in shown and 'aria-label="latency"' in shown
    assert "alan.turing" not in shown


def _reasons_a_row_at_a_time(path: Path) -> list[tuple[str, str, int, list[str]]]:
    """The reasons as report.html counted them before Polars did: the reference."""
    QUOTED = re.compile(r"'([^']*)'")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    found: dict[tuple[str, str], tuple[list[int], list[str]]] = {}
    for row in rows[1:]:
        stage, reason = row[-3], row[-2]
        if reason.lstrip("'")[:1] in FORMULA_CHARS and reason.lstrip("'"):  # as written
            reason = reason.removeprefix("'")
        for part in reason.split("; ") if stage == "validation" else [reason]:
            count, examples = found.setdefault(
                (stage, mask(QUOTED.sub("…", part))[:200]), ([0], [])
            )
            count[0] += 1
            target = part.split(":", 1)[0] if stage == "validation" else ""
            for value in QUOTED.findall(part)[:1]:
                shown = mask(mask_value(target, value))
                if len(examples) < EXAMPLES and shown not in examples:
                    examples.append(shown)
    ordered = sorted(found.items(), key=lambda item: -item[1][0][0])[:TOP_REASONS]
    return [(stage, kind, count[0], examples) for (stage, kind), (count, examples) in ordered]


def test_reject_reasons_are_counted_as_a_row_at_a_time_would(tmp_path: Path) -> None:
    """Several stages, several fields a validation reason, quotes inside values, values that
    look like formulas (written with an apostrophe), emails and phones to mask, a BOM and
    semicolons: the same kinds, counts, order and examples as the reference."""
    rng = random.Random(5)
    values = ["Pending", "bob@example", "+1 212 555 0199", "x'y", "", "Zoë", "=1+2", "a\nb"]

    def reason(stage: str) -> str:
        if stage != "validation":
            return rng.choice(["HTTP 422: phone +1 (212) 555-0101", "'boolean' value", "=x"])
        fields = rng.sample(["email", "phoneNumber", "active", "firstName"], rng.randint(1, 3))
        return "; ".join(
            rng.choice([f"{f}: '{rng.choice(values)}' is not valid", f"{f}: required, but empty"])
            for f in fields
        )

    rows: list[list[object]] = [["id", "email", *REJECTS_TRAILER]]
    for i in range(2_000):
        stage = rng.choice(["validation"] * 4 + ["parse", "duplicate", "api"])
        rows.append([f"C-{i}", rng.choice(values), i + 1, stage, reason(stage), ""])
    path = tmp_path / "rejects.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        for row in rows:  # cells a spreadsheet would take for formulas get an apostrophe
            writer.writerow([sheet_safe(str(c)) for c in row])
    found = [(r.stage, r.kind, r.count, r.examples) for r in reject_reasons(path)]
    assert found == _reasons_a_row_at_a_time(path)
    assert len(found) > 5 and any(len(examples) == EXAMPLES for *_, examples in found)
    workbook = write_xlsx(tmp_path / "rejects.xlsx", rows)  # cells as they are
    assert [(r.stage, r.kind, r.count, r.examples) for r in reject_reasons(workbook)] == found
