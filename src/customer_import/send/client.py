"""The client the job sends with: httpx requests and responses over an httpx transport.

``httpx.AsyncClient`` runs, on every request, machinery this job never uses: base-URL
merging, auth and redirect flows, event hooks, and cookie extraction from every response.
On this project's machine that cost as much CPU as the transport itself. Measured at
concurrency 64 against the sandbox (client CPU per request, getrusage):

- ``AsyncClient.post`` over ``AiohttpTransport``: 0.52 ms
- the same transport called directly with an ``httpx.Request``: 0.29 ms
- a bare aiohttp ``ClientSession``: 0.18 ms

So the job keeps httpx as its client API (``httpx.Request``, ``httpx.Response``, httpx's
exceptions and transport interface, so that any httpx transport plugs in, such as
``httpx.MockTransport`` in unit tests), and calls the transport itself. Redirects are not
followed (as with ``AsyncClient``'s default) and no cookie is kept: the API sets none.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Final, Literal

import httpx
from httpx_aiohttp import AiohttpTransport

from customer_import.version import __version__

USER_AGENT: Final = f"customer-import/{__version__}"


class ApiClient:
    """POSTs to one API: fixed headers and timeouts, one transport with a fixed pool."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport,
    ) -> None:
        self._base_url = httpx.URL(base_url.rstrip("/") + "/")
        self._headers = httpx.Headers(
            {"user-agent": USER_AGENT, "content-type": "application/json", **headers}
        )
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
        self._deadline_s = timeout
        self._transport = transport
        self._urls: dict[str, httpx.URL] = {}

    @property
    def base_url(self) -> str:
        return str(self._base_url)

    async def post(self, path: str, *, content: bytes) -> httpx.Response:
        """The answer, read whole within the timeout, from connecting to its last byte (a
        server that drips its body a byte at a time cannot hold a request open); transport
        failures raise httpx's exceptions."""
        try:
            async with asyncio.timeout(self._deadline_s):
                return await self._answer(path, content)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(
                f"no whole answer within {self._deadline_s:g} s (api.timeout: from connecting "
                "to the last byte)"
            ) from exc

    async def _answer(self, path: str, content: bytes) -> httpx.Response:
        url = self._urls.get(path)
        if url is None:  # as AsyncClient merges: the path goes under the base URL's own path
            url = self._urls[path] = self._base_url.join(path.lstrip("/"))
        request = httpx.Request(
            "POST",
            url,
            headers=self._headers,
            content=content,
            extensions=self._extensions,
        )
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()  # which closes the response once its body is read
        except BaseException:
            await response.aclose()
            raise
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> ApiClient:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc, traceback)


def make_client(
    base_url: str,
    headers: dict[str, str],
    *,
    concurrency: int,
    timeout: float,
    transport_name: Literal["aiohttp", "httpx"] = "aiohttp",
    transport: httpx.AsyncBaseTransport | None = None,
) -> ApiClient:
    """One client for the run; its pool holds exactly ``concurrency`` connections."""
    if transport is None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        transport = (
            AiohttpTransport(limits=limits)
            if transport_name == "aiohttp"
            else httpx.AsyncHTTPTransport(limits=limits)
        )
    return ApiClient(base_url, headers, timeout=timeout, transport=transport)
