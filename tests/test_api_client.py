"""ApiClient: what reaches the transport, and what comes back."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
import traceback
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pytest_httpx import HTTPXMock

from customer_import.contracts import RecordStatus, RejectStage, SendItem, SendOutcome
from customer_import.errors import FatalApiError, RunAborted
from customer_import.send.answers import (
    Disposition,
    classify,
    describe_error_response,
    describe_transport_error,
    parse_retry_after,
)
from customer_import.send.client import USER_AGENT, make_client
from customer_import.send.sender import PATH, RetryPolicy, Sender
from customer_import.version import __version__


def _send(base_url: str, handler: httpx.MockTransport, body: bytes = b'{"a":1}') -> httpx.Response:
    async def go() -> httpx.Response:
        async with make_client(
            base_url, {"x-api-key": "k"}, concurrency=2, timeout=7.5, transport=handler
        ) as client:
            return await client.post("/customers/add-update", content=body)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/customers/add-update"),
        ("https://api.example.com/v2/", "https://api.example.com/v2/customers/add-update"),
        ("https://api.example.com/v2", "https://api.example.com/v2/customers/add-update"),
    ],
)
def test_the_request_goes_under_the_base_url_with_the_job_headers_and_timeouts(
    base_url: str, expected: str
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"ok": True})

    response = _send(base_url, httpx.MockTransport(handler))

    (request,) = seen
    assert str(request.url) == expected
    assert request.method == "POST"
    assert request.content == b'{"a":1}'
    assert request.headers["x-api-key"] == "k"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.extensions["timeout"] == {"connect": 7.5, "read": 7.5, "write": 7.5, "pool": 7.5}
    assert response.status_code == 201
    assert response.json() == {"ok": True}  # read whole: usable after the transport closed
    assert response.request is request


def test_transport_failures_are_httpx_exceptions() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(httpx.ConnectError):
        _send("http://127.0.0.1:9", httpx.MockTransport(handler))


def test_both_transports_can_be_chosen_by_name() -> None:
    aiohttp_client = make_client("http://127.0.0.1:9", {}, concurrency=3, timeout=1)
    httpx_client = make_client(
        "http://127.0.0.1:9", {}, concurrency=3, timeout=1, transport_name="httpx"
    )
    assert type(aiohttp_client._transport).__name__ == "AiohttpTransport"
    assert isinstance(httpx_client._transport, httpx.AsyncHTTPTransport)


class _Body(httpx.AsyncByteStream):
    """An answer's body that notes whether it was closed, and may break after its first part."""

    def __init__(self, breaks: bool) -> None:
        self.breaks = breaks
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"ok":'
        if self.breaks:
            raise httpx.ReadError("connection reset while reading the answer")
        yield b"true}"

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("breaks", [False, True], ids=["read whole", "broken mid-answer"])
def test_the_answer_is_closed_whether_its_body_is_read_whole_or_breaks(breaks: bool) -> None:
    """Its connection goes back to the pool either way (a read whole closes the answer itself;
    the client closes one whose read fails)."""
    body = _Body(breaks)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, stream=body)

    if breaks:
        with pytest.raises(httpx.ReadError):
            _send("http://127.0.0.1:9", httpx.MockTransport(handler))
    else:
        assert _send("http://127.0.0.1:9", httpx.MockTransport(handler)).json() == {"ok": True}
    assert body.closed


# --- answers the sandbox cannot produce, through httpx's own transport (pytest-httpx) ---
#
# pytest-httpx patches ``httpx.AsyncHTTPTransport.handle_async_request``, so these clients are
# made by ``make_client`` with ``transport_name="httpx"`` and nothing injected: the request is
# built and sent as in a run, and the answer (or the transport error) comes from the mock.
# By default each test asserts that every answer it registered was asked for and that no
# request came that it did not expect: the number of requests is checked too.

BASE_URL = "http://api.test"
URL = BASE_URL + PATH
API_KEY = "key-that-must-never-be-shown-7d3e"
MERCHANT_ID = "merchant-42"
HEADERS = {"x-api-key": API_KEY, "x-merchant-id": MERCHANT_ID}  # as send/setup.py names them
STORED = {
    "externalId": "x",
    "createdAt": "2026-01-01T00:00:00.000Z",
    "updatedAt": "2026-01-01T00:00:00.000Z",
}


def _post(body: bytes = b'{"externalId":"x"}') -> httpx.Response:
    """One ``ApiClient.post`` over an ``httpx.AsyncHTTPTransport`` made by ``make_client``."""

    async def go() -> httpx.Response:
        async with make_client(
            BASE_URL, HEADERS, concurrency=2, timeout=5, transport_name="httpx"
        ) as client:
            return await client.post(PATH, content=body)

    return asyncio.run(go())


def _sent(max_attempts: int = 3) -> tuple[list[SendOutcome], Sender]:
    """A whole ``Sender.run`` of one record over such a client, with the job's credential
    headers and fast retries."""
    policy = RetryPolicy(
        max_attempts=max_attempts, base_delay=0.001, max_delay=0.005, connect_grace_s=0.05
    )
    outcomes: list[SendOutcome] = []

    async def batches() -> AsyncIterator[list[SendItem]]:
        yield [SendItem(1, "x", b'{"externalId":"x"}')]

    async def go() -> Sender:
        async with make_client(
            BASE_URL, HEADERS, concurrency=1, timeout=5, transport_name="httpx"
        ) as client:
            sender = Sender(client, concurrency=1, policy=policy, on_outcome=outcomes.append)
            await sender.run(batches())
            return sender

    return outcomes, asyncio.run(go())


REDIRECTS = [301, 307, 308]
ELSEWHERE = "https://api.test/customers/add-update"


@pytest.mark.parametrize("status", REDIRECTS)
def test_a_redirect_is_not_followed_the_3xx_answer_comes_back_as_is(
    httpx_mock: HTTPXMock, status: int
) -> None:
    httpx_mock.add_response(status_code=status, headers={"location": ELSEWHERE})

    response = _post()

    assert response.status_code == status
    assert response.headers["location"] == ELSEWHERE
    (request,) = httpx_mock.get_requests()  # the Location was not asked for
    assert str(request.url) == URL


@pytest.mark.parametrize("status", REDIRECTS)
def test_a_redirect_stops_the_run_naming_where_it_points(
    httpx_mock: HTTPXMock, status: int
) -> None:
    """Never followed (the key would go along), and not a per-record reject: every record
    would get the same answer."""
    httpx_mock.add_response(status_code=status, headers={"location": ELSEWHERE})

    with pytest.raises(FatalApiError, match=f"HTTP {status}: .*redirect to {ELSEWHERE}"):
        _sent()


CUT_SHORT = "peer closed connection without sending complete message body (incomplete chunked read)"


class _CutShort(httpx.AsyncByteStream):
    """A 200's body that breaks after its first bytes, as httpx raises it for a lost peer."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"externalId":"x","crea'
        raise httpx.RemoteProtocolError(CUT_SHORT)


def _add_cut_short(httpx_mock: HTTPXMock, where: str) -> None:
    if where == "before the answer":
        httpx_mock.add_exception(httpx.RemoteProtocolError(CUT_SHORT))
    else:
        httpx_mock.add_response(
            status_code=200, headers={"content-type": "application/json"}, stream=_CutShort()
        )


CUT_SHORT_WHERE = ["before the answer", "mid-body"]


@pytest.mark.parametrize("where", CUT_SHORT_WHERE)
def test_a_body_cut_short_is_a_transport_error_from_the_client(
    httpx_mock: HTTPXMock, where: str
) -> None:
    _add_cut_short(httpx_mock, where)

    with pytest.raises(httpx.RemoteProtocolError) as raised:
        _post()

    assert describe_transport_error(raised.value) == f"connection error: {CUT_SHORT}"
    assert classify(None) is Disposition.RETRY  # what the Sender makes of any transport error


@pytest.mark.parametrize("where", CUT_SHORT_WHERE)
def test_a_body_cut_short_every_time_is_retried_then_rejected_at_stage_transport(
    httpx_mock: HTTPXMock, where: str
) -> None:
    for _ in range(3):  # exactly max_attempts requests: a fourth would be unexpected
        _add_cut_short(httpx_mock, where)

    (outcome,), sender = _sent(max_attempts=3)

    assert outcome.status is None
    assert (outcome.stage, outcome.http_status, outcome.attempts) == (
        RejectStage.TRANSPORT,
        None,
        3,
    )
    assert outcome.reason == f"connection error: {CUT_SHORT} (after 3 attempts)"
    assert (sender.stats.requests, sender.stats.retries) == (3, 2)


@pytest.mark.parametrize("where", CUT_SHORT_WHERE)
def test_a_body_cut_short_once_is_retried_and_the_record_lands(
    httpx_mock: HTTPXMock, where: str
) -> None:
    _add_cut_short(httpx_mock, where)
    httpx_mock.add_response(status_code=201, json=STORED)

    (outcome,), sender = _sent(max_attempts=3)

    assert (outcome.status, outcome.http_status, outcome.attempts) == (RecordStatus.CREATED, 201, 2)
    assert (sender.stats.requests, sender.stats.retries) == (2, 1)


def _http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("0", 0.0),
        (" 3 ", 3.0),
        ("soon", None),
        ("1.5", None),  # delta-seconds are whole seconds
        ("-5", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date gone by: no wait
    ],
)
def test_parse_retry_after_reads_delta_seconds_and_refuses_what_it_cannot_read(
    value: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_gives_the_seconds_until_an_http_date() -> None:
    # an HTTP date has whole seconds: formatdate drops the fraction, so up to 1 s less
    assert 29 - 0.1 <= (parse_retry_after(_http_date(30)) or 0) <= 30


@pytest.mark.parametrize(
    ("retry_after", "waits"),
    [
        (lambda: "1", (1.0, 1.0)),
        (lambda: _http_date(1), (0.0, 1.0)),  # whole seconds: up to 1 s from now
        (lambda: "soon", None),  # the Sender falls back to a short backoff
    ],
    ids=["delta-seconds", "HTTP date", "unparseable"],
)
def test_a_429_is_waited_out_as_its_retry_after_says_without_using_up_attempts(
    httpx_mock: HTTPXMock, retry_after: Callable[[], str], waits: tuple[float, float] | None
) -> None:
    value = retry_after()
    wait = parse_retry_after(value)
    if waits is None:
        assert wait is None
    else:
        assert wait is not None
        assert waits[0] <= wait <= waits[1]
    httpx_mock.add_response(
        status_code=429,
        headers={"retry-after": value},
        json={"error": {"code": "RATE_LIMITED", "message": "slow down"}},
    )
    httpx_mock.add_response(status_code=201, json=STORED)
    started = time.monotonic()

    # max_attempts = 1: a 429 counted as an attempt would have rejected the record
    (outcome,), sender = _sent(max_attempts=1)

    elapsed = time.monotonic() - started
    assert (outcome.status, outcome.attempts) == (RecordStatus.CREATED, 1)
    assert (sender.stats.requests, sender.stats.rate_limited, sender.stats.retries) == (2, 1, 0)
    assert elapsed >= (wait or 0) - 0.05  # the Sender parses it again a moment later
    assert elapsed < (wait or 0) + 1.0


LONG_PAGE = "<html><body>" + "<p>upstream trouble</p>" * 40 + "</body></html>"


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (400, b"<html><body><h1>400 Bad Request</h1></body></html>", {"content-type": "text/html"}),
        (413, b"<html><head><title>413 Request Entity Too Large</title></head></html>", {}),
        (502, LONG_PAGE.encode(), {"content-type": "text/html; charset=utf-8"}),
        (400, b"\n  Bad Request  \n", {"content-type": "text/plain"}),
        (400, b"", {}),
        (400, b"\xff\xfe<html>\x00 not utf-8", {"content-type": "text/html"}),
        (400, b'{"message": "no envelope"}', {"content-type": "application/json"}),
        (400, b'{"error": "a string, not an object"}', {"content-type": "application/json"}),
        (400, b'{"error": {"details": "not a list"}}', {"content-type": "application/json"}),
        (400, b"[1,2,3]", {"content-type": "application/json"}),
        (400, b'{"error": {', {"content-type": "application/json"}),
    ],
    ids=[
        "html",
        "html no content-type",
        "long html",
        "plain text",
        "empty",
        "not utf-8",
        "json without envelope",
        "error a string",
        "details not a list",
        "json array",
        "json cut short",
    ],
)
def test_an_error_answer_that_is_not_the_json_envelope_is_described_by_its_text(
    httpx_mock: HTTPXMock, status: int, body: bytes, headers: dict[str, str]
) -> None:
    httpx_mock.add_response(status_code=status, headers=headers, content=body)

    response = _post()

    assert response.content == body
    described = describe_error_response(response)
    assert described == f"HTTP {status} {response.text[:500].strip()}".rstrip()
    assert len(described) <= len(f"HTTP {status} ") + 500


def test_an_html_400_rejects_the_record_with_the_start_of_the_page_as_its_reason(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_response(status_code=400, html="<html><h1>Bad Request</h1></html>")

    (outcome,), _ = _sent()

    assert (outcome.stage, outcome.http_status, outcome.attempts) == (RejectStage.API, 400, 1)
    assert outcome.reason == "HTTP 400 <html><h1>Bad Request</h1></html>"


@pytest.mark.parametrize(
    ("body", "headers", "content_type"),
    [
        (b"<html><body>OK</body></html>", {"content-type": "text/html"}, "text/html"),
        (b"", {}, None),
        (b"[1,2,3]", {"content-type": "application/json"}, "application/json"),
    ],
    ids=["html", "empty", "json array"],
)
def test_a_200_that_is_not_a_json_object_comes_back_intact_with_its_content_type(
    httpx_mock: HTTPXMock, body: bytes, headers: dict[str, str], content_type: str | None
) -> None:
    """Only the client and describe_error_response: what status the record gets is for a
    later issue (today such an answer counts as a success, a known defect)."""
    httpx_mock.add_response(status_code=200, headers=headers, content=body)

    response = _post()

    assert response.status_code == 200
    assert response.content == body
    assert response.headers.get("content-type") == content_type
    assert describe_error_response(response) == f"HTTP 200 {body.decode()}".rstrip()


def test_the_job_sends_its_credentials_json_and_its_user_agent(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=201, json=STORED)

    (outcome,), _ = _sent()

    assert outcome.status is RecordStatus.CREATED
    request = httpx_mock.get_request()
    assert request is not None
    assert (request.method, str(request.url)) == ("POST", URL)
    assert request.content == b'{"externalId":"x"}'
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["x-merchant-id"] == MERCHANT_ID
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"customer-import/{__version__}" == USER_AGENT


FAILURES = [
    pytest.param(lambda m: m.add_exception(httpx.ConnectError("refused")), id="refused"),
    pytest.param(lambda m: m.add_exception(httpx.ReadTimeout("timed out")), id="timeout"),
    pytest.param(lambda m: m.add_exception(httpx.RemoteProtocolError(CUT_SHORT)), id="cut"),
    pytest.param(lambda m: m.add_response(status_code=401), id="401"),
    pytest.param(lambda m: m.add_response(status_code=400, html="<p>no</p>"), id="400"),
    pytest.param(lambda m: m.add_response(status_code=503, text="busy"), id="503"),
]


def _texts(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, the traceback and its chained causes, and the
    request an httpx error carries."""
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, httpx.RequestError):
        parts.append(repr(exc.request))
    return "\n".join(parts)


@pytest.mark.httpx_mock(can_send_already_matched_responses=True)
@pytest.mark.parametrize("fail", FAILURES)
def test_the_api_key_never_shows_in_an_exception_or_log_record_of_a_failing_request(
    httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture, fail: Callable[[HTTPXMock], None]
) -> None:
    caplog.set_level(logging.DEBUG)
    fail(httpx_mock)
    shown: list[str] = []

    try:  # the client alone
        response = _post()
    except httpx.HTTPError as exc:
        shown.append(_texts(exc))
    else:
        assert response.status_code >= 400
        shown.append(describe_error_response(response))
    try:  # the job's sender
        outcomes, _ = _sent(max_attempts=2)
    except RunAborted as exc:  # a fatal answer, or an API never reached
        shown.append(_texts(exc))
    else:
        shown.extend(str(outcome) for outcome in outcomes)
    shown.extend(record.getMessage() for record in caplog.records)
    shown.append(caplog.text)

    assert all(request.headers["x-api-key"] == API_KEY for request in httpx_mock.get_requests())
    assert not [text for text in shown if API_KEY in text]
