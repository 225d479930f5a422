"""report.html: one self-contained page a person opens to see what a run did.

The summary, the reject reasons as a bar chart with examples, requests a second and latency
over the run, the quality of each mapped field, the warnings, and links to the other files.
Everything is in the one file (styles inline, charts as inline SVG) and the page forbids
itself every fetch (Content-Security-Policy ``default-src 'none'``): it opens the same from a
mail attachment, offline. Emails and phone numbers are masked wherever they appear, as in
the logs (``logs.mask``, ``logs.mask_value``). A page that cannot be written is logged; the
run's own outcome does not depend on it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Final

import polars as pl

from customer_import.config import SourceConfig
from customer_import.contracts import ROW, RecordStatus, RejectStage, RunReport
from customer_import.durable import replaced_text
from customer_import.errors import InputError
from customer_import.logs import mask, mask_value
from customer_import.outputs import svg
from customer_import.outputs.files import (
    MISSING_NAME,
    REJECTS,
    RESULTS,
    SUMMARY_NAME,
    table_path,
)
from customer_import.send.timeline import Point
from customer_import.source import open_source
from customer_import.transform.fieldstats import FieldStats

log = logging.getLogger("customer_import")

REPORT_NAME: Final = "report.html"
TOP_REASONS: Final = 12
EXAMPLES: Final = 3
_QUOTED: Final = re.compile(r"'([^']*)'")


@dataclass(slots=True)
class Reason:
    stage: str
    kind: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


def write_report(
    folder: Path,
    report: RunReport,
    *,
    timeline: Sequence[Point] = (),
    fields: FieldStats | None = None,
    shard_reports: Sequence[Path] = (),
) -> None:
    """report.html in ``folder``, beside the run's other files (read from there: rejects.csv
    for the reasons). ``shard_reports``: a merged run's shards' own pages, linked."""
    try:
        page = render(folder, report, timeline, fields, shard_reports)
        with replaced_text(folder / REPORT_NAME) as handle:
            handle.write(page)
    except Exception as exc:  # the page is for people: the run's outcome stands without it
        log.warning("%s could not be written (%s): the other files are", REPORT_NAME, exc)


def render(
    folder: Path,
    report: RunReport,
    timeline: Sequence[Point],
    fields: FieldStats | None,
    shard_reports: Sequence[Path],
) -> str:
    s = report.summary
    title = f"{s.job or 'customer-import'}: {report.status}"
    sections = [
        _heading(report),
        _counts(report),
        _rejects(reject_reasons(table_path(folder, REJECTS)), s.rejected),
        _timeline(timeline, dry_run=s.dry_run),
        _fields(fields),
        _warnings(s.warnings),
        _files(folder, report.out_dir, shard_reports),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f'<meta name="viewport" content="width=device-width"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )


def reject_reasons(path: Path | None) -> list[Reason]:
    """The most common reasons in a rejects file, by stage, each with a few masked examples:
    a validation reject's reason counts once a field it names (values left out of the kind).

    Counted by Polars, a window of rows at a time: Python sees each kind of reason once (to
    mask it) and, until it has its examples, its first ``_CANDIDATES`` different values a
    window (a million rejects took 8 s a row at a time)."""
    kinds: dict[tuple[str, str], _Kind] = {}
    for window in _reason_windows(path):
        for stage, raw, count, first, candidates in _kinds_of(window).iter_rows():
            kind = kinds.setdefault((stage, raw), _Kind(first))
            kind.count += count
            kind.add_examples(candidates)
    merged: dict[tuple[str, str], _Kind] = {}  # by masked kind, in the order first met
    for (stage, raw), kind in sorted(kinds.items(), key=lambda item: item[1].first):
        into = merged.setdefault((stage, mask(raw)[:200]), _Kind(kind.first))
        into.count += kind.count
        for shown, at in kind.shown.items():
            into.shown[shown] = min(at, into.shown.get(shown, at))
    reasons = [
        Reason(stage, text, kind.count, sorted(kind.shown, key=kind.shown.__getitem__)[:EXAMPLES])
        for (stage, text), kind in merged.items()
    ]
    return sorted(reasons, key=lambda r: -r.count)[:TOP_REASONS]


@dataclass(slots=True)
class _Kind:
    first: int
    """Where its first part is: row and part within the row."""
    count: int = 0
    shown: dict[str, int] = field(default_factory=dict)
    """Its first different examples as shown (masked), and where each is first."""

    def add_examples(self, candidates: list[dict[str, Any]]) -> None:
        """Values of a later window, in the order of the file, until ``EXAMPLES`` are kept
        (a kind made of several keeps that many of each, for the first of them all)."""
        for candidate in candidates:
            if len(self.shown) == EXAMPLES:
                return
            shown = mask(mask_value(candidate[_TARGET], candidate[_VALUE]))
            self.shown.setdefault(shown, candidate[_AT])


def _kinds_of(window: pl.DataFrame) -> pl.DataFrame:
    """STAGE, the kind before masking, its parts' count, where its first part is, and its
    first ``_CANDIDATES`` different values (AT, TARGET, VALUE): a window of (ROW, STAGE,
    REASON), a validation reason a part a field it names."""
    validation = pl.col(_STAGE) == RejectStage.VALIDATION
    split = pl.when(validation).then(pl.col(_REASON).str.split("; "))
    parts = (
        window.select(_ROW, _STAGE, split.otherwise(pl.concat_list(_REASON)).alias(_PART))
        .with_columns(pl.int_ranges(pl.col(_PART).list.len()).alias(_AT))
        .explode(_PART, _AT)
        .select(
            _STAGE,
            (pl.col(_ROW) * _PARTS_A_ROW + pl.col(_AT)).alias(_AT),
            pl.col(_PART).str.replace_all(_QUOTED.pattern, "…").alias(_RAW),
            pl.when(validation)
            .then(pl.col(_PART).str.splitn(":", 2).struct.field("field_0"))
            .otherwise(pl.lit(""))
            .alias(_TARGET),
            pl.col(_PART).str.extract(_QUOTED.pattern, 1).alias(_VALUE),
        )
    )
    counted = parts.group_by(_STAGE, _RAW, maintain_order=True).agg(
        pl.len().alias("n"), pl.col(_AT).min().alias("first")
    )
    values = (
        parts.filter(pl.col(_VALUE).is_not_null())
        .unique([_STAGE, _RAW, _TARGET, _VALUE], keep="first", maintain_order=True)
        .group_by(_STAGE, _RAW, maintain_order=True)
        .agg(pl.struct(_AT, _TARGET, _VALUE).head(_CANDIDATES).alias("values"))
    )
    joined = counted.join(values, on=[_STAGE, _RAW], how="left", maintain_order="left")
    return joined.with_columns(pl.col("values").fill_null([]))


def _reason_windows(path: Path | None) -> Iterator[pl.DataFrame]:
    """(ROW, STAGE, REASON) of the rows, the trailer's columns whatever the source's, a
    batch at a time: read as an input is (``source``: the tool's own rejects file is
    recognised, its cells as first written), so memory stays flat; broken lines are left out."""
    if path is None or not path.is_file():
        return
    try:
        with open_source(SourceConfig(path=path, batch_size=_WINDOW), path) as source:
            if not source.own_rejects:
                return
            stage, reason = source.columns[-3], source.columns[-2]
            for batch in source.batches([stage, reason]):
                yield batch.frame.select(
                    pl.col(ROW).alias(_ROW),
                    pl.col(stage).fill_null("").alias(_STAGE),
                    pl.col(reason).fill_null("").alias(_REASON),
                )
    except InputError as exc:
        log.warning("report.html: the reasons of %s are left out: %s", path.name, exc)


#: The working columns of ``reject_reasons``.
_ROW, _STAGE, _REASON, _PART, _AT = "row", "stage", "reason", "part", "at"
_RAW, _TARGET, _VALUE = "raw", "target", "value"
#: Parts a reason can have at most (a field each), to number them in file order.
_PARTS_A_ROW: Final = 1 << 10
#: Rows counted at a time: memory stays flat with the file's length.
_WINDOW: Final = 25_000
#: Different values of a kind of reason its examples are taken from.
_CANDIDATES: Final = 64


def _heading(report: RunReport) -> str:
    s = report.summary
    state = "ok" if report.exit_code == 0 else "warn" if report.exit_code == 1 else "bad"
    message = f'<p class="message">{escape(mask(report.message))}</p>' if report.message else ""
    when = f"{s.this_attempt.started_at or '?'} to {s.finished_at or '?'} (UTC)"
    return (
        f"<header><h1>{escape(s.job or 'customer-import')} "
        f'<span class="status {state}">{escape(str(report.status))}</span></h1>'
        f"<p>exit code {int(report.exit_code)}; {escape(when)}; input "
        f"{escape(s.input.path if s.input else '?')}"
        f"{'; dry run: nothing was sent' if s.dry_run else ''}</p>{message}</header>"
    )


def _counts(report: RunReport) -> str:
    s, attempt = report.summary, report.summary.this_attempt
    shown = [(str(status), s.count(status)) for status in RecordStatus if s.count(status)]
    if s.pending:
        shown.append(("pending", s.pending))
    if s.incremental is not None:
        shown += [("missing since the last run", s.incremental.missing_since_last_run)]
        shown += [("deactivated", s.incremental.deactivated)]
    latency = attempt.latency_ms
    sent = [
        ("requests", attempt.requests),
        ("retries", attempt.retries),
        ("429 answers", attempt.rate_limited),
        ("most in flight", attempt.max_in_flight),
        ("duration", f"{attempt.duration_s:g} s"),
        ("records a second", attempt.rows_per_s if attempt.rows_per_s is not None else "-"),
        ("latency p50 / p95 / p99", f"{latency.p50} / {latency.p95} / {latency.p99} ms"),
    ]
    whole = ""
    if s.attempts > 1:
        whole = (
            f"<p>Attempt {s.attempts} of this run; all of them: {s.requests} requests, "
            f"{s.retries} retries, {s.duration_s:g} s.</p>"
        )
    return (
        f"<section><h2>Records</h2><p>{s.rows} input records.</p>{_table(shown)}</section>"
        f"<section><h2>This attempt</h2>{_table(sent)}{whole}</section>"
    )


def _rejects(reasons: list[Reason], rejected: int) -> str:
    if not reasons:
        return "<section><h2>Reject reasons</h2><p>No record was rejected.</p></section>"
    chart = svg.bars(
        [(f"{r.stage}: {r.kind}", r.count) for r in reasons], label="the most common reasons"
    )
    rows = "".join(
        f"<tr><td>{escape(r.stage)}</td><td>{escape(r.kind)}</td><td>{r.count}</td>"
        f"<td>{escape(', '.join(r.examples))}</td></tr>"
        for r in reasons
    )
    return (
        f"<section><h2>Reject reasons</h2><p>{rejected} records rejected; the most common "
        f"reasons (a record may have several):</p>{chart}<table><tr><th>stage</th><th>reason"
        f"</th><th>records</th><th>examples (masked)</th></tr>{rows}</table></section>"
    )


def _timeline(points: Sequence[Point], *, dry_run: bool) -> str:
    heading = "<section><h2>Requests over the run</h2>"
    if not points:
        why = "a dry run sends nothing" if dry_run else "no request was sent"
        return f"{heading}<p>No requests to show: {why}.</p></section>"
    xs = [p.start_s + p.span_s for p in points]
    rates = svg.lines(
        xs,
        [
            ("requests/s", [round(p.per_s, 1) for p in points]),
            ("429s/s", [round(p.rate_limited / p.span_s, 1) if p.span_s else 0 for p in points]),
        ],
        label="requests a second",
        unit="per s",
    )
    latency = svg.lines(
        xs,
        [("p50", [p.p50_ms for p in points]), ("p95", [p.p95_ms for p in points])],
        label="latency",
        unit="ms",
    )
    sending = xs[-1]
    return (
        f"{heading}<p>{len(points)} points over {sending:.3g} s of sending (a point a second;"
        " a long run's are merged two by two, so there are never more than a few hundred)."
        "</p><h3>Requests a second</h3>"
        f"{rates}<h3>Latency</h3>{latency}</section>"
    )


def _fields(stats: FieldStats | None) -> str:
    heading = "<section><h2>Field quality</h2>"
    if stats is None:
        return f"{heading}<p>Not collected for this run (see each shard's report).</p></section>"
    rows = []
    for target, report in stats.fields.items():
        parts = [
            ("valid", report.valid),
            ("empty", report.empty),
            ("rejected", report.rejected),
            ("omitted", report.omitted),
        ]
        reasons = "<br>".join(
            f"{count} x {escape(mask(kind))} e.g. {escape(_examples(target, examples))}"
            for kind, count, examples in report.top_reasons()
        )
        counts = "".join(f"<td>{count}</td>" for _, count in parts)
        bar = svg.shares(parts, label=f"{target}: valid, empty, rejected, omitted")
        rows.append(f"<tr><td>{escape(target)}</td>{counts}<td>{bar}</td><td>{reasons}</td></tr>")
    return (
        f"{heading}<p>Per mapped field, as <code>customer-import check</code> counts them (the "
        "records read by this attempt).</p><table class='fields'><tr><th>field</th><th>valid"
        "</th><th>empty</th><th>rejected</th><th>omitted</th><th></th><th>most common reasons"
        "</th></tr>"
        f"{''.join(rows)}</table></section>"
    )


def _examples(target: str, values: Sequence[str]) -> str:
    """As ``check`` shows them: an email or phone field's never whole, and any email address
    or phone number inside another field's masked too."""
    return ", ".join(repr(mask(mask_value(target, v))) if v else "(empty)" for v in values)


def _warnings(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{escape(mask(w))}</li>" for w in warnings)
    return f"<section><h2>Warnings</h2><ul>{items}</ul></section>"


def _files(folder: Path, shown: Path, shard_reports: Sequence[Path]) -> str:
    """Links to the run's files beside the page, and to the shards' pages (from ``shown``,
    where the user finds the page: it may be written elsewhere first and copied there)."""
    tables = [table_path(folder, stem) for stem in (RESULTS, REJECTS)]
    names = [*(p.name for p in tables if p is not None), SUMMARY_NAME, MISSING_NAME]
    links = [(name, name) for name in names if (folder / name).exists()]
    links += [(f"shard {path.parent.name}", os.path.relpath(path, shown)) for path in shard_reports]
    items = "".join(f'<li><a href="{escape(href)}">{escape(text)}</a></li>' for text, href in links)
    return f"<section><h2>Files</h2><ul>{items}</ul></section>"


def _table(rows: Sequence[tuple[str, object]]) -> str:
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="facts">{cells}</table>'


_STYLE: Final = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:62em;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;margin-top:1.6em}
.status{font-size:.7em;padding:.15em .5em;border-radius:.3em;color:#fff;vertical-align:middle}
.ok{background:#2e7d32}.warn{background:#b26a00}.bad{background:#c62828}
.message{background:#fff4e5;padding:.5em .8em;border-left:4px solid #b26a00}
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.2em .6em;text-align:left;
vertical-align:top;border-bottom:1px solid #eee}.facts th{font-weight:normal;color:#555}
.bar{fill:#5c6bc0}.axis{stroke:#999}.line{fill:none;stroke-width:1.6}
.s0{stroke:#3949ab;fill:#3949ab}.s1{stroke:#e65100;fill:#e65100}polyline.s0,polyline.s1{fill:none}
.fields td:last-child{min-width:20em}
.p0{fill:#43a047}.p1{fill:#bdbdbd}.p2{fill:#e53935}.p3{fill:#fb8c00}
"""
