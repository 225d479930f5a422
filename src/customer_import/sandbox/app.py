"""The sandbox's HTTP application: the customer API as documented, plus ``/_sandbox/`` controls.

Routes (all JSON):

    GET  /                         readiness probe: name and version, no auth
    POST /customers/add-update     the documented upsert (201 created, 200 updated)
    GET  /customers/{externalId}   one stored customer
    GET  /customers?limit&offset   a page of stored customers (limit default 20, max 100)
    GET  /_sandbox/stats           request counts for tests and benchmarks, no auth
    POST /_sandbox/reset-stats     zero the counts
    POST /_sandbox/revoke-key      every further add-update request is answered 401
    POST /_sandbox/reset           a fresh server's state: no customers, zero counts, key valid
    POST /_sandbox/faults          other fault switches from now on: {"args": ["--html-4xx", "1"]}

Every error has the API's envelope ``{"error": {"code", "message", "details"}}``. A request the
fault switches drop gets no answer at all: its connection is reset. Switches that rehearse
something in front of the API (a redirect, a proxy's HTML pages) answer without the envelope.

This module holds the routes and handlers; what a body or query must be is in ``validation``,
the counts in ``stats``, the fault switches in ``faults``, the answers of an API that
misbehaves in ``misbehaviour`` and the customers in ``storage``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from customer_import.sandbox.faults import Drop, Faults, FaultSettings
from customer_import.sandbox.misbehaviour import answer_lost, dripped, drop_connection, in_front
from customer_import.sandbox.stats import DROPPED, Stats
from customer_import.sandbox.storage import CustomerStore
from customer_import.sandbox.validation import BadQuery, Detail, detail, int_param
from customer_import.sandbox.validation import validate_customer as validate_customer  # re-export

API_KEY_HEADER: Final = "x-api-key"
MERCHANT_ID_HEADER: Final = "x-merchant-id"
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100

#: Error codes of statuses that aiohttp itself raises (unknown path, wrong method, huge body).
_HTTP_ERROR_CODES: Final = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
_FAILURE_CODES: Final = {500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE"}
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: Fault switches from command-line options (``cli.parse_faults``); ValueError when invalid.
ParseFaults = Callable[[Sequence[str]], FaultSettings]


@dataclass(frozen=True)
class Credentials:
    """The key and merchant id every customer request must carry."""

    api_key: str
    merchant_id: str


def json_response(
    payload: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A compact JSON response."""
    return web.Response(
        body=_encode(payload).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[Detail] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The API's error envelope."""
    error = {"code": code, "message": message, "details": details or []}
    return json_response({"error": error}, status, headers)


def _validation_error(details: list[Detail], subject: str = "customer") -> web.Response:
    summary = "; ".join(f"{d['field']} {d['message']}" for d in details)
    return error_response(400, "VALIDATION_ERROR", f"invalid {subject}: {summary}", details)


class _NotJson:
    """A request body that could not be parsed; the 400 it earns comes after the faults."""

    def __init__(self, exc: Exception) -> None:
        self.detail = detail("body", f"is not valid JSON: {exc}")


def _parse_body(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        return _NotJson(exc)


class SandboxApi:
    """The handlers, holding the state they share: storage, faults, credentials and stats."""

    def __init__(
        self,
        store: CustomerStore,
        faults: Faults,
        credentials: Credentials,
        *,
        count_ids: bool = False,
        parse_faults: ParseFaults | None = None,
    ) -> None:
        self.store = store
        self.faults = faults
        self._started_faults = faults
        self._parse_faults = parse_faults
        self.credentials = credentials
        self.stats = Stats(count_ids=count_ids)
        self.identity = {"name": "customer-import sandbox", "version": _package_version()}

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count the request and give aiohttp's own HTTP errors (404, 405) the API's envelope."""
        if request.path.startswith("/_sandbox/"):
            return await _enveloped(handler, request)
        stats = self.stats
        stats.in_flight += 1
        # Let the requests already received on other connections be counted before this one is
        # answered: a handler that never waits would otherwise count one at a time, whatever
        # the client has in flight (max_in_flight 1 for a job with 32).
        await asyncio.sleep(0)
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            response = await _enveloped(handler, request)
        finally:
            stats.in_flight -= 1
        resource = request.match_info.route.resource
        stats.requests_total += 1
        stats.by_status[DROPPED if answer_lost(request) else str(response.status)] += 1
        stats.by_path[request.path if resource is None else resource.canonical] += 1
        return response

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        """A 401 unless both headers match; compared in constant time, never echoed."""
        key = request.headers.get(API_KEY_HEADER)
        merchant_id = request.headers.get(MERCHANT_ID_HEADER)
        if key is None or merchant_id is None:
            message = f"send both {API_KEY_HEADER} and {MERCHANT_ID_HEADER} headers"
        elif not (
            hmac.compare_digest(key.encode(), self.credentials.api_key.encode())
            and hmac.compare_digest(merchant_id.encode(), self.credentials.merchant_id.encode())
        ):
            message = "invalid API key or merchant id"
        else:
            return None
        return error_response(401, "UNAUTHORIZED", message)

    async def add_update(self, request: web.Request) -> web.StreamResponse:
        """Upsert one customer.

        In order: latency, what stands in front of the API (a redirect, HTML pages),
        credentials (then a revoked key), 429s (a shared quota, then the rate limit), first-N
        failures, random failure, conflict, a reset before the write, validation, the write, a
        reset after the write, a hang; then whatever the answer, a drip. The body is read first
        even when refused, so the connection stays reusable for the client's next request.
        """
        response = await self._add_update(request)
        if self.faults.drip() and not answer_lost(request):
            self.stats.faults["drip"] += 1
            return await dripped(request, response, self.faults.drip_s)
        return response

    async def _add_update(self, request: web.Request) -> web.Response:
        body = _parse_body(await request.read())
        self.stats.count_id(body)
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        refusal = in_front(self.faults, self.stats) or self._unauthorized(request)
        refusal = refusal or self._fault_response()
        if refusal is not None:
            return refusal
        drop = self.faults.drop()
        if drop is Drop.BEFORE_WRITE:
            return self._dropped(request, "reset_before_write")
        if isinstance(body, _NotJson):
            return _validation_error([body.detail])
        details = validate_customer(body)
        if details:
            return _validation_error(details)
        assert isinstance(body, dict)  # validate_customer said so
        response = self._write(body)
        if drop is Drop.AFTER_WRITE:
            return self._dropped(request, "reset_after_write")
        if self.faults.hang():
            self.stats.faults["hang"] += 1
            await asyncio.sleep(self.faults.hang_s)
        return response

    def _dropped(self, request: web.Request, fault: str) -> web.Response:
        self.stats.faults[fault] += 1
        return drop_connection(request)

    def _write(self, body: dict[str, Any]) -> web.Response:
        """The upsert itself, committed before this returns."""
        result = self.store.upsert(self.credentials.merchant_id, body)
        if result.created:
            self.stats.created += 1
            return json_response(result.customer, 201)
        self.stats.updated += 1
        return json_response(result.customer, 200)

    def _fault_response(self) -> web.Response | None:
        """The answer a switched-on fault gives instead of handling the request, if any."""
        if self.faults.key_revoked:
            return error_response(401, "UNAUTHORIZED", "the API key was revoked")
        if self.faults.shared_quota():
            return self._rate_limited("rate_limited_share", 0)
        retry_after = self.faults.retry_after_s()
        if retry_after is not None:
            return self._rate_limited("rate_limit", retry_after)
        first = self.faults.fail_first_left
        status = self.faults.failure_status()
        if status is not None:
            self.stats.faults["fail_first" if first else "fail_rate"] += 1
            return error_response(status, _FAILURE_CODES[status], "simulated server failure")
        if self.faults.conflict():
            self.stats.faults["conflict"] += 1
            return error_response(409, "DUPLICATE", "Duplicate externalId")
        return None

    def _rate_limited(self, fault: str, wait_s: int) -> web.Response:
        self.stats.faults[fault] += 1
        headers = {"Retry-After": self.faults.retry_after_header(wait_s)}
        return error_response(429, "RATE_LIMITED", "too many requests", headers=headers)

    async def get_customer(self, request: web.Request) -> web.Response:
        """One stored customer of the caller's merchant."""
        refusal = self._unauthorized(request)
        if refusal is not None:
            return refusal
        external_id = request.match_info["externalId"]
        customer = self.store.get(self.credentials.merchant_id, external_id)
        if customer is None:
            return error_response(404, "NOT_FOUND", f"no customer with externalId {external_id!r}")
        return json_response(customer)

    async def list_customers(self, request: web.Request) -> web.Response:
        """A page of the caller's customers in the order they were created."""
        refusal = self._unauthorized(request)
        if refusal is not None:
            return refusal
        try:
            limit = min(int_param(request.query, "limit", DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE)
            offset = int_param(request.query, "offset", 0, 0)
        except BadQuery as exc:
            return _validation_error([exc.detail], subject="query")
        data, total = self.store.page(self.credentials.merchant_id, limit, offset)
        return json_response({"data": data, "total": total, "limit": limit, "offset": offset})

    async def index(self, _request: web.Request) -> web.Response:
        """Readiness probe: answers as soon as the server accepts requests."""
        return json_response(self.identity)

    async def show_stats(self, _request: web.Request) -> web.Response:
        """The counts, see ``Stats``."""
        return json_response(self.stats.as_json())

    async def reset_stats(self, _request: web.Request) -> web.Response:
        """Zero the counts, e.g. between phases of one test."""
        self.stats.reset()
        return json_response(self.stats.as_json())

    async def revoke_key(self, _request: web.Request) -> web.Response:
        """Rehearse a key revoked mid-run."""
        self.faults.revoke_key()
        return json_response({"revoked": True})

    async def reset(self, _request: web.Request) -> web.Response:
        """Back to a fresh server's state, so one server can serve test after test: every
        customer deleted (all merchants), the counts zeroed, a revoked key valid again. The
        fault switches are the ones it started with (any set since are dropped), and their
        counters and random draws carry on."""
        self.store.clear()
        self.faults = self._started_faults
        self.faults.restore_key()
        self.stats.reset()
        return json_response(self.stats.as_json())

    async def set_faults(self, request: web.Request) -> web.Response:
        """Other fault switches from now on, given as the command's options
        (``{"args": ["--html-4xx", "1", "--seed", "3"]}``; ``[]``: none), checked as the
        command line is; draws and counters start afresh. A revoked key stays revoked."""
        if self._parse_faults is None:
            return error_response(404, "NOT_FOUND", "this server cannot change its faults")
        try:
            body = await request.json()
            args = body.get("args") if isinstance(body, dict) else None
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise ValueError('send {"args": [...]}, the options as strings')
            settings = self._parse_faults(args)
        except ValueError as exc:  # a JSONDecodeError too
            return error_response(400, "VALIDATION_ERROR", str(exc))
        revoked = self.faults.key_revoked
        self.faults = Faults(settings)
        self.faults.key_revoked = revoked
        return json_response({"faults": settings.describe()})


async def _enveloped(handler: Handler, request: web.Request) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_ERROR_CODES.get(exc.status, "HTTP_ERROR")
        return error_response(exc.status, code, f"{exc.reason}: {request.method} {request.path}")


def _package_version() -> str:
    try:
        return version("customer-import")
    except PackageNotFoundError:
        return "unknown"


def create_app(
    store: CustomerStore,
    faults: Faults,
    credentials: Credentials,
    *,
    count_ids: bool = False,
    parse_faults: ParseFaults | None = None,
) -> web.Application:
    """The sandbox application; the caller owns ``store`` and closes it after the server stops.
    Without ``parse_faults``, ``POST /_sandbox/faults`` is refused."""
    api = SandboxApi(store, faults, credentials, count_ids=count_ids, parse_faults=parse_faults)
    app = web.Application(middlewares=[api.track])
    app.add_routes(
        [
            web.get("/", api.index),
            web.post("/customers/add-update", api.add_update),
            web.get("/customers", api.list_customers),
            web.get("/customers/{externalId}", api.get_customer),
            web.get("/_sandbox/stats", api.show_stats),
            web.post("/_sandbox/reset-stats", api.reset_stats),
            web.post("/_sandbox/revoke-key", api.revoke_key),
            web.post("/_sandbox/reset", api.reset),
            web.post("/_sandbox/faults", api.set_faults),
        ]
    )
    return app
