"""``customer-import sandbox``: serve the customer API locally for the demo, tests and benchmarks.

Exit codes: 0 after SIGINT/SIGTERM (database committed and closed), 1 when the database cannot be
opened or the port cannot be bound, 2 for bad options, including a non-loopback ``--host``
without ``--allow-remote``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from customer_import.hosts import is_loopback
from customer_import.sandbox.app import Credentials, create_app
from customer_import.sandbox.faults import (
    DATE_FROM_NOW,
    DEFAULT_HANG_MS,
    DEFAULT_REDIRECT_STATUS,
    REDIRECT_STATUSES,
    Faults,
    FaultSettings,
)
from customer_import.sandbox.storage import CustomerStore

DEFAULT_PORT: Final = 3156
API_KEY_ENV: Final = "CUSTOMERS_API_KEY"
MERCHANT_ID_ENV: Final = "CUSTOMERS_MERCHANT_ID"
DEMO_API_KEY: Final = "demo-key"
DEMO_MERCHANT_ID: Final = "demo-merchant"
EXIT_OK: Final = 0
EXIT_START_FAILED: Final = 1
EXIT_USAGE: Final = 2
#: How long a stopping server lets in-flight requests finish.
SHUTDOWN_GRACE_S: Final = 3.0


@dataclass(frozen=True)
class _Identity:
    """The credentials to expect and where each came from (for the start-up line)."""

    credentials: Credentials
    key_source: str
    merchant_source: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox's options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="loopback only unless --allow-remote")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--db", type=Path, help="SQLite file kept across runs (default: in memory)")
    parser.add_argument(
        "--api-key",
        type=_non_empty,
        help=f"key to expect (default: ${API_KEY_ENV}, else {DEMO_API_KEY!r}); prefer the env var",
    )
    parser.add_argument(
        "--merchant-id",
        type=_non_empty,
        help=f"merchant id to expect (default: ${MERCHANT_ID_ENV}, else {DEMO_MERCHANT_ID!r})",
    )
    _add_fault_arguments(
        parser.add_argument_group("rehearsed trouble (POST /customers/add-update only)")
    )
    parser.add_argument(
        "--count-ids",
        action="store_true",
        help="count add-update requests per externalId in /_sandbox/stats (by_external_id)",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a --host that is not loopback"
    )
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use asyncio's own event loop (benchmarks)"
    )


def _add_fault_arguments(faults: argparse._ActionsContainer) -> None:
    faults.add_argument("--latency-ms", type=_non_negative, default=0.0, metavar="N")
    faults.add_argument(
        "--fail-rate", type=_fraction, default=0.0, metavar="F", help="answer 500/503 at random"
    )
    faults.add_argument(
        "--rate-limit", type=_positive, metavar="R", help="requests/s, bursts of 1 s worth; 429"
    )
    faults.add_argument(
        "--fail-first", type=_count, default=0, metavar="N", help="answer the first N with 503"
    )
    faults.add_argument(
        "--conflict-rate",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="answer 409 DUPLICATE at random, writing nothing",
    )
    faults.add_argument(
        "--reset-rate",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="reset the connection at random, half before and half after the write",
    )
    faults.add_argument(
        "--hang-rate",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="write, then hold the answer for --hang-ms, at random",
    )
    faults.add_argument(
        "--hang-ms", type=_non_negative, default=DEFAULT_HANG_MS, metavar="N", help="default 60000"
    )
    faults.add_argument(
        "--drip-ms",
        type=_non_negative,
        default=0.0,
        metavar="N",
        help="send an answer's headers at once, then its body one byte every N ms",
    )
    faults.add_argument(
        "--drip-rate",
        type=_fraction,
        metavar="F",
        help="with --drip-ms: drip that fraction of answers, at random (default 1: every one)",
    )
    faults.add_argument(
        "--non-json-2xx",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="answer 200 with an HTML page at random, writing nothing (a proxy, a portal)",
    )
    faults.add_argument(
        "--html-4xx",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="answer 400 with an HTML page, not the API's JSON error, at random (a proxy)",
    )
    faults.add_argument(
        "--redirect",
        type=_header_value,
        metavar="URL",
        help="answer every request with a redirect to URL, writing nothing",
    )
    faults.add_argument(
        "--redirect-status",
        type=int,
        choices=REDIRECT_STATUSES,
        metavar="N",
        help=f"with --redirect: 301, 302, 303, 307 or 308 (default {DEFAULT_REDIRECT_STATUS})",
    )
    faults.add_argument(
        "--rate-limited-share",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="answer 429 (Retry-After: 0) at random whatever the pace: a shared quota",
    )
    faults.add_argument(
        "--retry-after",
        type=_retry_after,
        metavar="VALUE",
        help="the Retry-After of every 429 (with --rate-limit or --rate-limited-share): "
        "seconds such as 3600, an HTTP date, date+N (N s after each answer), any text",
    )
    faults.add_argument("--seed", type=int, help="makes every random draw repeatable")


class _RaisingParser(argparse.ArgumentParser):
    """Bad options raise ValueError rather than exit: a running server answers them 400."""

    def error(self, message: str) -> typing.NoReturn:
        raise ValueError(message)


def parse_faults(argv: Sequence[str]) -> FaultSettings:
    """The fault switches of ``argv`` (fault options only, as on the command line), for
    ``POST /_sandbox/faults``; ValueError says what is wrong with them."""
    parser = _RaisingParser(prog="POST /_sandbox/faults", add_help=False)
    _add_fault_arguments(parser)
    args = parser.parse_args(list(argv))
    useless = option_without_effect(args)
    if useless:
        raise ValueError(useless)
    return fault_settings(args)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    if not args.allow_remote and not is_loopback(args.host):
        print(
            f"sandbox: refusing to listen on {args.host!r}, which is not a loopback address; "
            "pass --allow-remote to expose the sandbox to other machines",
            file=sys.stderr,
        )
        return EXIT_USAGE
    useless = option_without_effect(args)
    if useless:
        print(f"sandbox: {useless}", file=sys.stderr)
        return EXIT_USAGE
    with asyncio.Runner(loop_factory=_loop_factory(args.no_uvloop)) as runner:
        return runner.run(_serve(args, _identity(args)))


def _identity(args: argparse.Namespace) -> _Identity:
    api_key, key_source = _pick(args.api_key, API_KEY_ENV, DEMO_API_KEY)
    merchant_id, merchant_source = _pick(args.merchant_id, MERCHANT_ID_ENV, DEMO_MERCHANT_ID)
    return _Identity(Credentials(api_key, merchant_id), key_source, merchant_source)


def _pick(flag: str | None, env_name: str, demo: str) -> tuple[str, str]:
    """A setting and where it came from: the flag, else the environment, else the demo value."""
    if flag is not None:
        return flag, "flag"
    from_env = os.environ.get(env_name)
    if from_env:
        return from_env, f"environment {env_name}"
    return demo, "demo default"


async def _serve(args: argparse.Namespace, identity: _Identity) -> int:
    try:
        store = CustomerStore(args.db)
    except sqlite3.Error as exc:
        return _failed(f"cannot open the database {args.db}: {exc}")
    try:
        return await _serve_store(args, identity, store)
    finally:
        store.close()


async def _serve_store(args: argparse.Namespace, identity: _Identity, store: CustomerStore) -> int:
    settings = fault_settings(args)
    app = create_app(
        store,
        Faults(settings),
        identity.credentials,
        count_ids=args.count_ids,
        parse_faults=parse_faults,
    )
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        try:
            await site.start()
        except OSError as exc:
            return _failed(f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
        stop = _stop_on_signals()
        _announce(site.name, identity, settings)
        await stop.wait()
        return EXIT_OK
    finally:
        await runner.cleanup()


def fault_settings(args: argparse.Namespace) -> FaultSettings:
    """The fault switches from parsed options."""
    return FaultSettings(
        latency_ms=args.latency_ms,
        fail_rate=args.fail_rate,
        rate_limit=args.rate_limit,
        seed=args.seed,
        fail_first=args.fail_first,
        conflict_rate=args.conflict_rate,
        reset_rate=args.reset_rate,
        hang_rate=args.hang_rate,
        hang_ms=args.hang_ms,
        drip_ms=args.drip_ms,
        drip_rate=1.0 if args.drip_rate is None else args.drip_rate,
        non_json_2xx=args.non_json_2xx,
        html_4xx=args.html_4xx,
        redirect=args.redirect,
        redirect_status=args.redirect_status or DEFAULT_REDIRECT_STATUS,
        rate_limited_share=args.rate_limited_share,
        retry_after=args.retry_after,
    )


def option_without_effect(args: argparse.Namespace) -> str | None:
    """An option given without the one it qualifies: a rehearsal would silently lack it."""
    if args.retry_after is not None and args.rate_limit is None and not args.rate_limited_share:
        return "--retry-after applies to 429s: add --rate-limit or --rate-limited-share"
    if args.drip_rate is not None and not args.drip_ms:
        return "--drip-rate chooses the answers --drip-ms drips: add --drip-ms"
    if args.redirect_status is not None and args.redirect is None:
        return "--redirect-status is the status of --redirect's answers: add --redirect"
    return None


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so both end the server the same clean way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _announce(url: str, identity: _Identity, settings: FaultSettings) -> None:
    """The start-up lines; the first is what test helpers wait for. Never prints the key."""
    merchant_id = identity.credentials.merchant_id
    print(f"sandbox listening on {url}")
    print(
        f"sandbox expects merchant id {merchant_id!r} ({identity.merchant_source}) "
        f"and the API key from {identity.key_source} (not shown)"
    )
    if settings.describe():
        print(f"sandbox rehearses: {settings.describe()}")
    sys.stdout.flush()


def _failed(message: str) -> int:
    print(f"sandbox: {message}", file=sys.stderr)
    return EXIT_START_FAILED


def _loop_factory(no_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (and not refused), else asyncio's default (None)."""
    if no_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0..65535 (0 picks a free port)")
    return value


def _non_empty(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _header_value(text: str) -> str:
    if not text or not text.isprintable() or not text.isascii():
        raise argparse.ArgumentTypeError("must be printable ASCII, not empty")
    return text


def _retry_after(text: str) -> str:
    value = _header_value(text)
    if value.startswith("date+") and not DATE_FROM_NOW.fullmatch(value):
        raise argparse.ArgumentTypeError("date+N takes N in whole seconds (up to 9 digits)")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value
