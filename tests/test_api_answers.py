"""Only the API's answer is a success, a redirect or a front door stops the run, a long
Retry-After stops it at once, an API never reached stops it after a grace period, and the
timeout is a deadline: what the sender does with answers that are not the API's."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from customer_import.contracts import RejectStage, SendItem, SendOutcome
from customer_import.errors import ApiUnavailable, FatalApiError, RateLimited
from customer_import.send.answers import parse_retry_after
from customer_import.send.client import make_client
from customer_import.send.flow import CircuitBreaker
from customer_import.send.sender import RetryPolicy, Sender

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.005)


def _send(
    handler: Callable[[httpx.Request], httpx.Response] | None,
    items: int = 1,
    policy: RetryPolicy = FAST,
    breaker: CircuitBreaker | None = None,
    base_url: str = "http://api.test",
    transport_name: str = "httpx",
    timeout: float = 5,
) -> list[SendOutcome]:
    outcomes: list[SendOutcome] = []

    async def batches() -> AsyncIterator[list[SendItem]]:
        yield [
            SendItem(i, f"id-{i}", json.dumps({"externalId": f"id-{i}"}).encode())
            for i in range(1, items + 1)
        ]

    async def go() -> None:
        transport = None if handler is None else httpx.MockTransport(handler)
        client = make_client(
            base_url,
            {},
            concurrency=1,
            timeout=timeout,
            transport_name=transport_name,  # type: ignore[arg-type]
            transport=transport,
        )
        async with client:
            sender = Sender(
                client, concurrency=1, policy=policy, on_outcome=outcomes.append, breaker=breaker
            )
            await sender.run(batches())

    asyncio.run(go())
    return outcomes


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>Welcome to nginx</body></html>", "text/html"),
        (b"", "text/plain"),
        (b"[1,2,3]", "application/json"),
        (b'{"externalId": "someone-else"}', "application/json"),
    ],
    ids=["html", "empty", "json array", "another customer"],
)
def test_a_2xx_that_is_not_the_customer_is_retried_never_recorded_as_a_success(
    body: bytes, content_type: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})

    (outcome,) = _send(handler)

    assert outcome.status is None and outcome.stage is RejectStage.TRANSPORT
    assert outcome.attempts == 3
    assert f"({content_type}," in (outcome.reason or "")
    assert "is api.base_url the API?" in (outcome.reason or "")


def test_when_the_breaker_opens_on_such_answers_the_run_stop_says_what_came() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"})

    breaker = CircuitBreaker(threshold=3, probe_every_s=0.01, max_outage_s=0.2)
    with pytest.raises(ApiUnavailable, match=r"text/html.*is api.base_url the API\?"):
        _send(
            handler,
            items=5,
            policy=RetryPolicy(max_attempts=100, base_delay=0.001),
            breaker=breaker,
        )


def test_the_api_answering_echoes_the_customer_is_a_success() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        stored = {**json.loads(request.content), "createdAt": "t", "updatedAt": "t"}
        return httpx.Response(201, json=stored)

    (outcome,) = _send(handler)

    assert (outcome.status, outcome.attempts) == ("created", 1)


def test_twenty_html_rejects_in_a_row_mean_something_in_front_of_the_api() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(
            400, text="<html>Bad Request</html>", headers={"content-type": "text/html"}
        )

    with pytest.raises(FatalApiError, match="something in front of the API is answering"):
        _send(handler, items=50)
    assert calls == 20


def test_rejects_with_the_apis_error_body_are_the_records_own() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        error = {"code": "VALIDATION_ERROR", "message": "bad", "details": []}
        return httpx.Response(400, json={"error": error})

    outcomes = _send(handler, items=30)

    assert len(outcomes) == 30 and all(o.stage is RejectStage.API for o in outcomes)


@pytest.mark.parametrize(
    "retry_after",
    ["3600", "99999999999999999999", "in two hours"],
)
def test_a_retry_after_beyond_max_rate_limited_s_stops_the_run_at_once(retry_after: str) -> None:
    if retry_after == "in two hours":
        from email.utils import formatdate

        retry_after = formatdate(time.time() + 7200, usegmt=True)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": retry_after})

    started = time.monotonic()
    said = "a wait no API means" if "9999" in retry_after else "takes requests again from"
    with pytest.raises(RateLimited, match=said):
        _send(handler, policy=RetryPolicy(max_rate_limited_s=60))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("value", ["²", "١٢", "Sun, 06 Nov 1994 08:49:37 -0000"])
def test_retry_after_values_that_are_not_plain_numbers_never_crash(value: str) -> None:
    waited = parse_retry_after(value)
    assert waited is None or waited == 0.0


def test_an_http_date_without_a_zone_is_gmt() -> None:
    from email.utils import formatdate

    in_a_minute = formatdate(time.time() + 60, usegmt=True).replace(" GMT", "")  # asctime-like
    waited = parse_retry_after(in_a_minute)
    assert waited is not None and 55 < waited < 65


@pytest.mark.parametrize(
    ("base_url", "transport_name"),
    [
        ("http://127.0.0.1:9", "aiohttp"),  # refused
        ("http://127.0.0.1:9", "httpx"),
        # a name that does not resolve (aiohttp's lookups can take seconds here: one is enough)
        ("http://no-such-host.invalid", "httpx"),
    ],
)
def test_an_api_never_reached_stops_after_the_grace_naming_the_url_and_the_error(
    base_url: str, transport_name: str
) -> None:
    policy = RetryPolicy(max_attempts=1000, base_delay=0.01, max_delay=0.02, connect_grace_s=0.3)

    with pytest.raises(ApiUnavailable) as raised:
        _send(
            None,
            items=2,
            policy=policy,
            base_url=base_url,
            transport_name=transport_name,
            timeout=1,
        )

    message = str(raised.value)
    assert f"no request reached the API at {base_url}/" in message
    assert "connection error" in message


@contextmanager
def dripping_server() -> Iterator[str]:
    """Headers at once, then the body one byte every 0.2 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 200\r\n\r\n")
        while not stop.is_set():
            try:
                connection.sendall(b" ")
            except OSError:
                break
            stop.wait(0.2)
        connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()
        thread.join(timeout=5)


@pytest.mark.parametrize("transport_name", ["aiohttp", "httpx"])
def test_the_timeout_is_a_deadline_for_the_whole_answer(transport_name: str) -> None:
    with dripping_server() as url:
        started = time.monotonic()
        (outcome,) = _send(
            None,
            base_url=url,
            transport_name=transport_name,
            timeout=1,
            policy=RetryPolicy(max_attempts=1),
        )

    assert time.monotonic() - started < 5
    assert outcome.stage is RejectStage.TRANSPORT
    assert "no whole answer within 1 s" in (outcome.reason or "")
