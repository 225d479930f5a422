"""ApiClient: what reaches the transport, and what comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from customer_import.send.client import USER_AGENT, make_client


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
