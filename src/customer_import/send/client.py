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

The whole-answer deadline is kept by one timer for every request in flight (``Deadlines``),
which looks every twentieth of the timeout (at most every second) and cancels the requests
past theirs: ``asyncio.timeout`` around each request scheduled and cancelled a timer of the
event loop a request, about 2 % of the stack's instructions a request (``bench/instructions.py``).
A request is therefore cut at most a twentieth of the timeout after its deadline.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any, Final, Literal

import httpx
from httpx_aiohttp import AiohttpTransport

from customer_import.version import __version__

USER_AGENT: Final = f"customer-import/{__version__}"
_TICKS: Final = 20  # the deadlines are looked at every timeout / _TICKS
_MAX_TICK_S: Final = 1.0


class Deadlines:
    """The tasks in flight and their deadlines, all watched by one timer of the event loop.

    A task past its deadline is cancelled (once); ``expired`` then tells that cancellation
    from any other, as ``asyncio.timeout`` does, by the task's count of cancellations."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tick_s = min(_MAX_TICK_S, seconds / _TICKS)
        self._tasks: dict[asyncio.Task[Any], tuple[float, int]] = {}  # deadline, cancelling
        self._cancelled: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, task: asyncio.Task[Any]) -> None:
        self._tasks[task] = (time.monotonic() + self.seconds, task.cancelling())
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._tick_s, self._look)

    def end(self, task: asyncio.Task[Any]) -> None:
        del self._tasks[task]
        if task in self._cancelled:  # cut by its deadline, yet it ended otherwise: the
            self._cancelled.discard(task)  # count goes back, as asyncio.timeout's does
            task.uncancel()

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the CancelledError ``task`` is handling came from its deadline (the
        cancellation is then taken back); call before ``end``."""
        if task not in self._cancelled:
            return False
        self._cancelled.discard(task)
        return task.uncancel() <= self._tasks[task][1]

    def _look(self) -> None:
        self._timer = None
        now = time.monotonic()
        for task, (deadline, _) in self._tasks.items():
            if deadline <= now and task not in self._cancelled:
                self._cancelled.add(task)
                task.cancel()
        if self._tasks:
            self._timer = asyncio.get_running_loop().call_later(self._tick_s, self._look)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


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
        self._deadlines = Deadlines(timeout)
        self._transport = transport
        self._urls: dict[str, httpx.URL] = {}

    @property
    def base_url(self) -> str:
        return str(self._base_url)

    async def post(self, path: str, *, content: bytes) -> httpx.Response:
        """The answer, read whole within the timeout, from connecting to its last byte (a
        server that drips its body a byte at a time cannot hold a request open); transport
        failures raise httpx's exceptions. One coroutine: every await of the transport's
        resumes each coroutine on the way down."""
        request = self._request(path, content)
        task = asyncio.current_task()
        assert task is not None
        deadlines = self._deadlines
        deadlines.start(task)
        try:
            response = await self._transport.handle_async_request(request)
            response.request = request
            try:
                await response.aread()  # which closes the response once its body is read
            except BaseException:
                await response.aclose()
                raise
            return response
        except asyncio.CancelledError as exc:
            if not deadlines.expired(task):
                raise
            raise httpx.ReadTimeout(
                f"no whole answer within {deadlines.seconds:g} s (api.timeout: from connecting "
                "to the last byte)"
            ) from exc
        finally:
            deadlines.end(task)

    def _request(self, path: str, content: bytes) -> httpx.Request:
        url = self._urls.get(path)
        if url is None:  # as AsyncClient merges: the path goes under the base URL's own path
            url = self._urls[path] = self._base_url.join(path.lstrip("/"))
        return httpx.Request(
            "POST", url, headers=self._headers, content=content, extensions=self._extensions
        )

    async def aclose(self) -> None:
        self._deadlines.close()
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
        self._deadlines.close()
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
