"""The sandbox's HTTP application: the customer API as documented, plus ``/_sandbox/`` controls.

Routes (all JSON):

    GET  /                         readiness probe: name and version, no auth
    POST /customers/add-update     the documented upsert (201 created, 200 updated)
    GET  /customers/{externalId}   one stored customer
    GET  /customers?limit&offset   a page of stored customers (limit default 20, max 100)
    GET  /_sandbox/stats           request counts for tests and benchmarks, no auth
    POST /_sandbox/reset-stats     zero the counts
    POST /_sandbox/revoke-key      every further add-update request is answered 401

Every error has the API's envelope ``{"error": {"code", "message", "details"}}``. A request the
fault switches drop gets no answer at all: its connection is reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import socket
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from customer_import.sandbox.faults import Drop, Faults
from customer_import.sandbox.storage import CustomerStore

API_KEY_HEADER: Final = "x-api-key"
MERCHANT_ID_HEADER: Final = "x-merchant-id"
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100

#: Error codes of statuses that aiohttp itself raises (unknown path, wrong method, huge body).
_HTTP_ERROR_CODES: Final = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
_FAILURE_CODES: Final = {500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE"}
#: ``by_status`` key of requests whose answer never reached the client (see ``Stats``).
DROPPED: Final = "dropped"
# SO_LINGER on, zero seconds: close() sends a TCP RST, as a crashed server or a proxy would
_RESET_ON_CLOSE: Final = struct.pack("ii", 1, 0)

_REQUIRED: Final = ("externalId", "firstName")
_STRING_FIELDS: Final = frozenset(("externalId", "firstName", "lastName", "email", "phoneNumber"))
_NOTIFICATION_KEYS: Final = frozenset(("notifyEmail", "notifyPhone"))
# deliberately simple: one @, no spaces, a dot in the domain; the job validates properly
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# at most 9 digits: anything larger is a mistake, and would overflow SQLite's integers
_QUERY_INT: Final = re.compile(r"[0-9]{1,9}")

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

Detail = dict[str, str]


@dataclass(frozen=True)
class Credentials:
    """The key and merchant id every customer request must carry."""

    api_key: str
    merchant_id: str


@dataclass
class Stats:
    """What the sandbox saw, for tests that count the job's requests and check its concurrency.

    Requests to ``/_sandbox/`` are not counted, so reading the stats does not change them.
    ``by_status`` counts a request whose answer never reached the client (its connection was
    dropped by a fault, or the client had gone when the answer was ready) as ``"dropped"``.
    ``by_external_id`` (only with ``count_ids``) counts add-update requests per body externalId.
    """

    count_ids: bool = False
    requests_total: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    by_external_id: Counter[str] = field(default_factory=Counter)
    created: int = 0
    updated: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def as_json(self) -> dict[str, Any]:
        """The ``GET /_sandbox/stats`` body."""
        body = {
            "requests_total": self.requests_total,
            "by_status": dict(self.by_status),
            "by_path": dict(self.by_path),
            "upserts": {"created": self.created, "updated": self.updated},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }
        if self.count_ids:
            body["by_external_id"] = dict(self.by_external_id)
        return body

    def count_id(self, body: object) -> None:
        """Count one add-update request for its body's externalId (when counting is on)."""
        if self.count_ids and isinstance(body, dict) and isinstance(body.get("externalId"), str):
            self.by_external_id[body["externalId"]] += 1

    def reset(self) -> None:
        """Zero the counts; requests still in flight stay counted as in flight."""
        self.requests_total = self.created = self.updated = 0
        self.by_status.clear()
        self.by_path.clear()
        self.by_external_id.clear()
        self.max_in_flight = self.in_flight


def validate_customer(body: object) -> list[Detail]:
    """Every problem of an add-update body, empty when valid; all are reported, not the first."""
    if not isinstance(body, dict):
        return [_detail("body", "must be a JSON object")]
    details = [_detail(name, "is required") for name in _REQUIRED if name not in body]
    for name, value in body.items():
        details.extend(_field_problems(name, value))
    return details


def _field_problems(name: str, value: object) -> list[Detail]:
    if name in _STRING_FIELDS:
        return _string_problems(name, value)
    if name == "active":
        return [] if isinstance(value, bool) else [_detail(name, "must be a boolean")]
    if name == "notificationOptions":
        return _notification_problems(value)
    return [_detail(name, "is not a known field")]


def _string_problems(name: str, value: object) -> list[Detail]:
    if not isinstance(value, str):
        return [_detail(name, "must be a string")]
    if name in _REQUIRED and not value.strip():
        return [_detail(name, "must not be empty")]
    if name == "email" and not _EMAIL.fullmatch(value):
        return [_detail(name, "must be a valid email address")]
    return []


def _notification_problems(value: object) -> list[Detail]:
    if not isinstance(value, dict):
        return [_detail("notificationOptions", "must be an object")]
    details = []
    for key, flag in value.items():
        name = f"notificationOptions.{key}"
        if key not in _NOTIFICATION_KEYS:
            details.append(_detail(name, "is not a known field"))
        elif not isinstance(flag, bool):
            details.append(_detail(name, "must be a boolean"))
    return details


def _detail(name: str, message: str) -> Detail:
    return {"field": name, "message": message}


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


class _BadQuery(ValueError):
    """A query parameter out of range; carries the detail for the 400 answer."""

    def __init__(self, detail: Detail) -> None:
        super().__init__(detail["message"])
        self.detail = detail


class _NotJson:
    """A request body that could not be parsed; the 400 it earns comes after the faults."""

    def __init__(self, exc: Exception) -> None:
        self.detail = _detail("body", f"is not valid JSON: {exc}")


def _parse_body(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        return _NotJson(exc)


def _drop_connection(request: web.Request) -> web.Response:
    """Reset the connection: the client gets no answer. The returned response is never sent."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        transport.abort()
    return web.Response(status=204)


def _answer_lost(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class SandboxApi:
    """The handlers, holding the state they share: storage, faults, credentials and stats."""

    def __init__(
        self,
        store: CustomerStore,
        faults: Faults,
        credentials: Credentials,
        *,
        count_ids: bool = False,
    ) -> None:
        self.store = store
        self.faults = faults
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
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            response = await _enveloped(handler, request)
        finally:
            stats.in_flight -= 1
        resource = request.match_info.route.resource
        stats.requests_total += 1
        stats.by_status[DROPPED if _answer_lost(request) else str(response.status)] += 1
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

    async def add_update(self, request: web.Request) -> web.Response:
        """Upsert one customer.

        In order: latency, credentials (then a revoked key), rate limit, first-N failures,
        random failure, conflict, a reset before the write, validation, the write, a reset
        after the write, a hang. The body is read first even when refused, so the connection
        stays reusable for the client's next request.
        """
        body = _parse_body(await request.read())
        self.stats.count_id(body)
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        refusal = self._unauthorized(request) or self._fault_response()
        if refusal is not None:
            return refusal
        drop = self.faults.drop()
        if drop is Drop.BEFORE_WRITE:
            return _drop_connection(request)
        if isinstance(body, _NotJson):
            return _validation_error([body.detail])
        details = validate_customer(body)
        if details:
            return _validation_error(details)
        assert isinstance(body, dict)  # validate_customer said so
        response = self._write(body)
        if drop is Drop.AFTER_WRITE:
            return _drop_connection(request)
        if self.faults.hang():
            await asyncio.sleep(self.faults.hang_s)
        return response

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
        retry_after = self.faults.retry_after_s()
        if retry_after is not None:
            headers = {"Retry-After": str(retry_after)}
            return error_response(429, "RATE_LIMITED", "too many requests", headers=headers)
        status = self.faults.failure_status()
        if status is not None:
            return error_response(status, _FAILURE_CODES[status], "simulated server failure")
        if self.faults.conflict():
            return error_response(409, "DUPLICATE", "Duplicate externalId")
        return None

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
            limit = min(_int_param(request.query, "limit", DEFAULT_PAGE_SIZE, 1), MAX_PAGE_SIZE)
            offset = _int_param(request.query, "offset", 0, 0)
        except _BadQuery as exc:
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


async def _enveloped(handler: Handler, request: web.Request) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_ERROR_CODES.get(exc.status, "HTTP_ERROR")
        return error_response(exc.status, code, f"{exc.reason}: {request.method} {request.path}")


def _int_param(query: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    """A query parameter as an int >= ``minimum``; raises ``_BadQuery`` otherwise."""
    raw = query.get(name)
    if raw is None:
        return default
    if _QUERY_INT.fullmatch(raw) and int(raw) >= minimum:
        return int(raw)
    raise _BadQuery(_detail(name, f"must be an integer >= {minimum}"))


def _package_version() -> str:
    try:
        return version("customer-import")
    except PackageNotFoundError:
        return "unknown"


def create_app(
    store: CustomerStore, faults: Faults, credentials: Credentials, *, count_ids: bool = False
) -> web.Application:
    """The sandbox application; the caller owns ``store`` and closes it after the server stops."""
    api = SandboxApi(store, faults, credentials, count_ids=count_ids)
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
        ]
    )
    return app
