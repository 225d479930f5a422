"""Command line: parse arguments, call one library function, render its report, exit.

No CSV or HTTP logic lives here; errors become exit codes at this boundary only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Final

from tqdm import tqdm

from customer_import import logs, snapshot
from customer_import.config import JobConfig, is_url, load_job
from customer_import.errors import ConfigError, ImportJobError, InputError
from customer_import.fieldstats import FieldStats
from customer_import.logs import mask_value
from customer_import.merge import merge_outputs
from customer_import.pipeline import (
    STATUS_COMPLETED,
    STATUS_INTERRUPTED,
    Progress,
    RunOptions,
    RunReport,
    run_job,
)
from customer_import.sandbox import cli as sandbox_cli
from customer_import.sharding import Shard, concurrency_shares
from customer_import.signals import handlers_set
from customer_import.snapshot import state_locations
from customer_import.source import shared_copy
from customer_import.workers import PROGRESS_KEY, run_in_workers

#: Exit codes (README, "Exit codes").
EXIT_OK: Final = 0
EXIT_REJECTS: Final = 1
EXIT_CONFIG: Final = 2
EXIT_ABORTED: Final = 3
EXIT_SIGINT: Final = 130
EXIT_SIGTERM: Final = 143

log = logging.getLogger("customer_import")


def _input(text: str) -> Path | str:
    """--input: a URL stays text (``Path`` would fold its ``//``), anything else is a path."""
    return text if is_url(text) else Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="customer-import",
        description="Import a customer export (CSV/Parquet) into the customers API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands.add_parser("run", help="run a job: validate and upsert every record"))
    _add_check(
        commands.add_parser("check", help="dry run with a report per field; exit 1 on rejects")
    )
    _add_state(commands.add_parser("state", help="show or reset a job's incremental sync state"))
    merge = commands.add_parser("merge", help="combine the outputs of shards into one")
    merge.add_argument("shards", type=Path, nargs="+", help="the shards' output folders")
    merge.add_argument("--out", type=Path, required=True, help="where the merged files go")
    sandbox = commands.add_parser("sandbox", help="start the local API sandbox")
    sandbox_cli.add_arguments(sandbox)
    return parser


def _add_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, help="the job file (TOML)")
    parser.add_argument("--input", type=_input, help="input file or URL instead of [source] path")
    parser.add_argument("--out", type=Path, help="output directory instead of [output] dir")
    parser.add_argument("--base-url", help="API base URL instead of [api] base_url")
    parser.add_argument("--concurrency", type=int, help="most requests in flight at once")
    parser.add_argument(
        "--rate-limit", type=float, help="requests per second, all workers together"
    )
    parser.add_argument("--dry-run", action="store_true", help="validate only; send nothing")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--incremental",
        action="store_const",
        const="incremental",
        dest="mode",
        help="send only records new or changed since the last run",
    )
    mode.add_argument(
        "--full",
        action="store_const",
        const="full",
        dest="mode",
        help="send every record (an incremental job still refreshes its state)",
    )
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue an unfinished run")
    resume.add_argument("--restart", action="store_true", help="discard an unfinished run")
    parser.add_argument(
        "--shard", type=_shard, help="K/N: only the records whose id hashes to shard K of N"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes, each sending a shard (uses more cores)"
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    # A --workers worker's progress, as JSON lines on stdout for the parent to add up.
    parser.add_argument("--progress-json", action="store_true", help=argparse.SUPPRESS)
    # A --workers worker reads the parent's copy of a remote input instead of its own.
    parser.add_argument("--input-copy", type=Path, help=argparse.SUPPRESS)


def _add_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, help="the job file (TOML)")
    parser.add_argument("--input", type=_input, help="input file or URL instead of [source] path")
    parser.add_argument(
        "--out", type=Path, help="where rejects.csv goes (default: <output dir>/check)"
    )


def _add_state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("show", "reset"))
    parser.add_argument("job", type=Path, help="the job file (TOML)")
    parser.add_argument("--base-url", help="the API the state belongs to (default: the job's)")
    parser.add_argument(
        "--all", action="store_true", help="every state of the job, whatever the API or merchant"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":
        return sandbox_cli.run(args)
    logs.configure(getattr(args, "log_format", "text"))
    command = {"run": _run, "check": _check, "state": _state, "merge": _merge}[args.command]
    # Until a run handles SIGTERM itself (and again after it), SIGTERM exits as Ctrl-C does,
    # through every clean-up on the way: a half-copied object, for one, is deleted.
    try:
        with handlers_set(_exit_on_sigterm, (signal.SIGTERM,)):
            return command(args)
    except (ConfigError, InputError) as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    except ImportJobError as exc:
        log.error("%s", exc)
        return EXIT_ABORTED


def _run(args: argparse.Namespace) -> int:
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if args.rate_limit is not None and args.rate_limit <= 0:
        raise ConfigError("--rate-limit must be above 0")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    job = load_job(args.job)
    if args.workers > 1:
        return _run_workers(args, job)
    renderer = _ProgressRenderer(enabled=not (args.no_progress or args.progress_json))
    with renderer as on_progress:
        options = RunOptions(
            input=args.input,
            input_copy=args.input_copy,
            out_dir=args.out,
            base_url=args.base_url,
            concurrency=args.concurrency,
            rate_limit=args.rate_limit,
            mode=args.mode,
            shard=args.shard,
            dry_run=args.dry_run,
            resume=args.resume,
            restart=args.restart,
            progress=_json_progress if args.progress_json else on_progress,
            handle_signals=True,
        )
        report = run_job(job, options)
    _print_report(report)
    return exit_code(report)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    log.warning("stopped by SIGTERM")
    raise SystemExit(EXIT_SIGTERM)


def _json_progress(progress: Progress) -> None:
    """A --workers worker's progress, for its parent. Should the parent be gone (its end of the
    pipe closed), whatever the worker prints from then on goes nowhere, and the run goes on."""
    try:
        print(json.dumps({PROGRESS_KEY: dataclasses.asdict(progress)}), flush=True)
    except OSError:
        # As Python's documentation advises for a closed pipe: the buffered text, and all
        # that follows, is then written to /dev/null instead of failing again at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise


def _shard(spec: str) -> Shard:
    try:
        return Shard.parse(spec)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _run_workers(args: argparse.Namespace, job: JobConfig) -> int:
    if args.shard is not None:
        raise ConfigError("--workers and --shard do not go together: a shard runs in one process")
    if not args.dry_run:  # refused here once, rather than by every worker
        concurrency_shares(args.concurrency or job.api.concurrency, args.workers)
    out_dir = args.out or job.output.dir
    assert out_dir is not None
    # An object on S3 or GCS is copied once for all the workers, rather than once each.
    with shared_copy(args.input or job.source.path) as copy:
        worker_args = _worker_args(args) + (["--input-copy", str(copy)] if copy else [])
        with _ProgressRenderer(enabled=not args.no_progress) as on_progress:
            summary, signum = run_in_workers(
                args.job, worker_args, args.workers, out_dir, on_progress
            )
    report = RunReport(summary["status"], summary, out_dir, summary.get("message"), signum)
    _print_report(report)
    return exit_code(report)


def _worker_args(args: argparse.Namespace) -> list[str]:
    """The flags every worker gets: all of the run's but --out, --workers and --no-progress."""
    flags = {
        "--input": args.input,
        "--base-url": args.base_url,
        "--concurrency": args.concurrency,
        "--rate-limit": args.rate_limit,
        "--log-format": args.log_format,
    }
    worker = [str(x) for flag, value in flags.items() if value is not None for x in (flag, value)]
    switches = {"--dry-run": args.dry_run, "--resume": args.resume, "--restart": args.restart}
    worker += [flag for flag, on in switches.items() if on]
    return worker + ([f"--{args.mode}"] if args.mode else [])


def _merge(args: argparse.Namespace) -> int:
    summary = merge_outputs(args.shards, args.out)
    report = RunReport(summary["status"], summary, args.out, summary.get("message"))
    _print_report(report)
    return exit_code(report)


def _check(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    assert job.output.dir is not None
    stats = FieldStats(tuple(job.mapping.fields))
    options = RunOptions(
        input=args.input,
        out_dir=args.out or job.output.dir / "check",
        dry_run=True,
        restart=True,
        field_stats=stats,
        handle_signals=True,
    )
    report = run_job(job, options)
    print(render_check(report, stats))
    return EXIT_REJECTS if report.rejected else EXIT_OK


def render_check(report: RunReport, stats: FieldStats) -> str:
    s = report.summary
    lines = [
        f"{s['rows']} records: "
        + ", ".join(f"{s[k]} {k}" for k in ("valid", "duplicate", "rejected"))
    ]
    if s["rejected_by_stage"]:
        lines.append(f"rejected by stage: {_counts(s['rejected_by_stage'])}")
    for target, field in stats.fields.items():
        lines.append(
            f"{target}: {field.valid} valid, {field.empty} empty, {field.rejected} rejected"
        )
        for kind, count, examples in field.top_reasons():
            shown = ", ".join(repr(mask_value(target, e)) if e else "(empty)" for e in examples)
            lines.append(f"    {count} x {kind}   e.g. {shown}")
    lines.append(f"rejects: {report.out_dir / 'rejects.csv'}")
    return "\n".join(lines)


def _state(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    locations = state_locations(job, args.base_url, everything=args.all)
    if args.action == "show":
        states = [snapshot.describe(loc, snapshot.mapping_fingerprint(job)) for loc in locations]
        print(json.dumps(states, indent=2))
    else:
        for location in locations:
            snapshot.reset(location)
            print(f"removed {location.folder}")
    if not locations:
        print(f"no state kept for job {job.name!r}", file=sys.stderr)
    return EXIT_OK


def exit_code(report: RunReport) -> int:
    if report.status == STATUS_INTERRUPTED:
        return EXIT_SIGTERM if report.signum == 15 else EXIT_SIGINT
    if report.status != STATUS_COMPLETED:
        return EXIT_ABORTED
    return EXIT_REJECTS if report.rejected else EXIT_OK


class _ProgressRenderer:
    """A tqdm bar on a terminal; otherwise (cron) a log line every few seconds."""

    _LOG_EVERY_S: Final = 10.0

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: tqdm[None] | None = None
        self._last_log = time.monotonic()

    def __enter__(self) -> Callable[[Progress], None] | None:
        return self._update if self._enabled else None

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def _update(self, progress: Progress) -> None:
        if sys.stderr.isatty():
            self._draw(progress)
        elif time.monotonic() - self._last_log >= self._LOG_EVERY_S:
            self._last_log = time.monotonic()
            log.info(
                "progress: %d/%d records; %s",
                progress.done,
                progress.total,
                _counts(progress.counts),
            )

    def _draw(self, progress: Progress) -> None:
        if self._bar is None:
            self._bar = tqdm(
                total=progress.total or None, unit="rec", file=sys.stderr, dynamic_ncols=True
            )
        self._bar.total = progress.total or None
        self._bar.update(progress.done - self._bar.n)
        self._bar.set_postfix_str(_counts(progress.counts), refresh=False)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "starting"


def _print_report(report: RunReport) -> None:
    s = report.summary
    shown = ("created", "updated", "unchanged", "duplicate", "valid", "rejected")
    lines = [
        f"{report.status}: {s['rows']} records; this run {s['duration_s']} s "
        f"at {s['rows_per_s']} records/s",
        "  " + ", ".join(f"{k} {s[k]}" for k in shown if s[k] or k == "rejected"),
    ]
    if s["pending"]:
        lines.append(f"  pending {s['pending']} (not sent yet: run again with --resume)")
    if s["rejected_by_stage"]:
        lines.append(f"  rejected by stage: {_counts(s['rejected_by_stage'])}")
    if report.message:
        lines.append(f"  {report.message}")
    for name in ("results.csv", "rejects.csv", "summary.json"):
        lines.append(f"  {name}: {report.out_dir / name}")
    print("\n".join(lines))
