"""What the sandbox answers when a switch says it misbehaves: a connection reset, a page from
something in front of the API (a redirect, nginx's HTML), an answer dripped a byte at a time."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Final

from aiohttp import web

from customer_import.sandbox.faults import Faults
from customer_import.sandbox.stats import Stats

# SO_LINGER on, zero seconds: close() sends a TCP RST, as a crashed server or a proxy would
_RESET_ON_CLOSE: Final = struct.pack("ii", 1, 0)
# What a web server or proxy in front of the API answers in its place (nginx's own pages).
_WELCOME_PAGE: Final = (
    b"<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title></head>\n<body>\n"
    b"<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is "
    b"successfully installed and working.</p>\n</body>\n</html>\n"
)
_BAD_REQUEST_PAGE: Final = (
    b"<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n"
    b"<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_MOVED_PAGE: Final = b"<html><body>Moved</body></html>\n"


def drop_connection(request: web.Request) -> web.Response:
    """Reset the connection: the client gets no answer. The returned response is never sent."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        transport.abort()
    return web.Response(status=204)


def html(status: int, page: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=page, status=status, content_type="text/html", headers=headers)


def answer_lost(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def in_front(faults: Faults, stats: Stats) -> web.Response | None:
    """What something in front of the API answers in its place, if a switch says so: it
    never reaches the API, so no credentials are checked and nothing is written."""
    if faults.redirect is not None:
        stats.faults["redirect"] += 1
        location = {"Location": faults.redirect}
        return html(faults.redirect_status, _MOVED_PAGE, location)
    if faults.html_4xx():
        stats.faults["html_4xx"] += 1
        return html(400, _BAD_REQUEST_PAGE)
    if faults.non_json_2xx():
        stats.faults["non_json_2xx"] += 1
        return html(200, _WELCOME_PAGE)
    return None


async def dripped(request: web.Request, answer: web.Response, drip_s: float) -> web.StreamResponse:
    """``answer`` with its headers sent at once and its body a byte every ``drip_s``."""
    body = answer.body
    assert isinstance(body, bytes)  # every answer here is built from bytes
    stream = web.StreamResponse(status=answer.status, reason=answer.reason)
    stream.headers.extend(
        (name, value) for name, value in answer.headers.items() if name != "Content-Length"
    )
    stream.content_length = len(body)
    try:
        await stream.prepare(request)
        for at in range(len(body)):
            await asyncio.sleep(drip_s)
            await stream.write(body[at : at + 1])
        await stream.write_eof()
    except ConnectionError:
        pass  # the client gave up (its timeout): counted as dropped
    return stream
