"""Command line: parse arguments, call one library function, render its report, exit.

No CSV or HTTP logic lives here; errors become exit codes (``contracts.ExitCode``) at this
boundary only.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from customer_import import logs
from customer_import.config import is_url, load_job
from customer_import.console import ProgressRenderer, log_report, print_report, render_check
from customer_import.contracts import ExitCode, RunReport
from customer_import.errors import ConfigError, ImportJobError
from customer_import.record import incremental, snapshot
from customer_import.record.history import History
from customer_import.record.locks import FolderLock
from customer_import.run.options import RunOptions
from customer_import.run.process import handlers_set
from customer_import.runner import run_job
from customer_import.sandbox import cli as sandbox_cli
from customer_import.scaffold import init_job
from customer_import.scale.merge import merge_run
from customer_import.transform.fieldstats import FieldStats
from customer_import.transform.sharding import Shard

log = logging.getLogger("customer_import")


def _input(text: str) -> Path | str:
    """--input: a URL stays text (``Path`` would fold its ``//``), anything else is a path."""
    return text if is_url(text) else Path(text)


class _Parser(argparse.ArgumentParser):
    """argparse's parser; with ``--log-format json`` a usage error is a JSON line too."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if not _Parser.json_errors:
            super().error(message)
        log.error("%s: %s", self.prog, message, extra=logs.event("usage_error", exit_code=2))
        sys.exit(ExitCode.NOTHING_DONE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="customer-import",
        description="Import a customer export (CSV/Parquet/Excel) into the customers API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands.add_parser("run", help="run a job: validate and upsert every record"))
    _add_check(
        commands.add_parser("check", help="dry run with a report per field; exit 1 on rejects")
    )
    _add_state(commands.add_parser("state", help="show or reset a job's incremental sync state"))
    init = commands.add_parser("init", help="write a commented job file for an export, check it")
    init.add_argument("export", type=_input, help="the export: CSV, TSV (.gz too), Parquet, .xlsx")
    init.add_argument("--out", type=Path, help="the job file to write (default: <export>.toml)")
    init.add_argument("--force", action="store_true", help="replace the job file if it exists")
    merge = commands.add_parser("merge", help="combine the outputs of shards into one")
    merge.add_argument("shards", type=Path, nargs="+", help="the shards' output folders")
    merge.add_argument("--out", type=Path, required=True, help="where the merged files go")
    sandbox = commands.add_parser("sandbox", help="start the local API sandbox")
    sandbox_cli.add_arguments(sandbox)
    return parser


def _add_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, help="the job file (TOML)")
    parser.add_argument("--input", type=_input, help="input file or URL instead of [source] path")
    parser.add_argument("--encoding", help="the input's codec (or auto) instead of [source]'s")
    parser.add_argument(
        "--delimiter",
        type=_delimiter,
        help="the input's delimiter instead of [source]'s: , ; | tab",
    )


def _delimiter(text: str) -> str:
    """--delimiter: "tab" (or "\\t", as a shell passes it) is a tab."""
    return "\t" if text.lower() in ("tab", "\\t") else text


def _add_run(parser: argparse.ArgumentParser) -> None:
    _add_input(parser)
    parser.add_argument("--out", type=Path, help="output directory instead of [output] dir")
    parser.add_argument("--base-url", help="API base URL instead of [api] base_url")
    parser.add_argument("--concurrency", type=int, help="most requests in flight at once")
    parser.add_argument(
        "--rate-limit", type=float, help="requests per second, all workers together"
    )
    parser.add_argument("--dry-run", action="store_true", help="validate only; send nothing")
    parser.add_argument(
        "--format",
        choices=("csv", "xlsx"),
        help="results and rejects as CSV or Excel workbooks instead of [output] format",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="incremental: deactivate the missing customers however many they are (this run)",
    )
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
    resume.add_argument(
        "--restart", action="store_true", help="close an unfinished run as abandoned, start anew"
    )
    parser.add_argument(
        "--shard", type=_shard, help="K/N: only the records whose id hashes to shard K of N"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes, each sending a shard (uses more cores)"
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: every line on stdout and stderr is one JSON object (the report too)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (a progress log line every 10 s instead)",
    )


def _add_check(parser: argparse.ArgumentParser) -> None:
    _add_input(parser)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    _Parser.json_errors = _json_logs_asked(argv)
    if _Parser.json_errors:
        logs.configure("json")
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":
        return sandbox_cli.run(args)
    logs.configure(getattr(args, "log_format", "text"))
    command = {"run": _run, "check": _check, "state": _state, "merge": _merge, "init": _init}[
        args.command
    ]
    # Until a run handles SIGTERM itself (and again after it), SIGTERM exits as Ctrl-C does,
    # through every clean-up on the way: a half-copied object, for one, is deleted.
    try:
        with handlers_set(_exit_on_sigterm, (signal.SIGTERM,)):
            return command(args)
    except ImportJobError as exc:
        log.error("%s", exc, extra=logs.event("run_refused", exit_code=int(exc.exit_code)))
        return exc.exit_code
    except Exception:  # a bug: never an exit code that means "completed"
        log.exception(
            "an unexpected error (a fault of customer-import: please report it)",
            extra=logs.event("crashed", exit_code=int(ExitCode.SOFTWARE)),
        )
        return ExitCode.SOFTWARE


def _json_logs_asked(argv: list[str]) -> bool:
    """``--log-format json`` is on the command line (known before it is parsed)."""
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    return "--log-format=json" in argv or ("--log-format", "json") in pairs


def _run(args: argparse.Namespace) -> int:
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if args.rate_limit is not None and args.rate_limit <= 0:
        raise ConfigError("--rate-limit must be above 0")
    job = load_job(args.job)
    if args.format is not None:
        job = job.model_copy(update={"output": job.output.model_copy(update=_format(args))})
    text = args.log_format == "text"
    with ProgressRenderer(bar=text and not args.no_progress) as on_progress:
        options = RunOptions(
            input=args.input,
            encoding=args.encoding,
            delimiter=args.delimiter,
            out_dir=args.out,
            base_url=args.base_url,
            concurrency=args.concurrency,
            rate_limit=args.rate_limit,
            mode=args.mode,
            shard=args.shard,
            dry_run=args.dry_run,
            allow_missing=args.allow_missing,
            resume=args.resume,
            restart=args.restart,
            progress=on_progress,
            handle_signals=True,
        )
        report = run_job(job, options, workers=args.workers, log_format=args.log_format)
    if text:
        print_report(report)
    else:  # stdout stays empty: the report is two log lines
        log_report(report)
    return report.exit_code


def _format(args: argparse.Namespace) -> dict[str, str]:
    return {"format": args.format}


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    log.warning("stopped by SIGTERM")
    raise SystemExit(ExitCode.SIGTERM)


def _shard(spec: str) -> Shard:
    try:
        return Shard.parse(spec)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _merge(args: argparse.Namespace) -> int:
    history = History(args.out)
    with FolderLock(args.out, "the output folder"):
        summary = merge_run(args.shards, history, history.new_run())
    report = RunReport(summary.status, summary, args.out, summary.message)
    print_report(report)
    return report.exit_code


def _check(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    assert job.output.dir is not None
    stats = FieldStats(tuple(job.mapping.fields))
    options = RunOptions(
        input=args.input,
        encoding=args.encoding,
        delimiter=args.delimiter,
        out_dir=args.out or job.output.dir / "check",
        dry_run=True,
        restart=True,
        field_stats=stats,
        handle_signals=True,
    )
    report = run_job(job, options)
    print(render_check(report, stats))
    return ExitCode.REJECTS if report.rejected else ExitCode.OK


def _init(args: argparse.Namespace) -> int:
    """Write the job file, then run ``check`` on it as it is written (exit 1: a choice is left)."""
    result = init_job(args.export, args.out, force=args.force)
    print(result.summary())
    code: int = ExitCode.REJECTS
    if result.ready:
        code = _check(build_parser().parse_args(["check", str(result.path)]))
    print(result.next_step(code))
    return code


def _state(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    locations = incremental.state_locations(job, args.base_url, everything=args.all)
    if args.action == "show":
        fingerprint = snapshot.mapping_fingerprint(job)
        print(json.dumps([snapshot.describe(loc, fingerprint) for loc in locations], indent=2))
    else:
        for location in locations:
            snapshot.reset(location)
            print(f"removed {location.folder}")
    if not locations:
        print(f"no state kept for job {job.name!r}", file=sys.stderr)
    return ExitCode.OK
