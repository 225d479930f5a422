"""The whole-answer deadline: one timer for every request in flight (send/client.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from customer_import.send.client import make_client


class _Silent(httpx.AsyncBaseTransport):
    """A transport that answers after ``answer_s`` (never, by default)."""

    def __init__(self, answer_s: float = 3600.0) -> None:
        self.answer_s = answer_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.answer_s)
        return httpx.Response(201, content=b"{}")


async def _post(transport: httpx.AsyncBaseTransport, timeout: float) -> httpx.Response:
    async with make_client(
        "http://api.test", {}, concurrency=4, timeout=timeout, transport=transport
    ) as client:
        return await client.post("/x", content=b"{}")


def test_a_request_past_its_deadline_raises_read_timeout() -> None:
    with pytest.raises(httpx.ReadTimeout, match=r"no whole answer within 0\.05 s"):
        asyncio.run(_post(_Silent(), timeout=0.05))


def test_an_answer_within_the_deadline_comes_back_and_later_requests_have_their_own() -> None:
    async def go() -> list[int]:
        transport = _Silent(answer_s=0)  # an answer at once: a loaded machine can't make it late
        async with make_client(
            "http://api.test", {}, concurrency=4, timeout=0.5, transport=transport
        ) as client:
            first = await client.post("/x", content=b"{}")
            await asyncio.sleep(0.6)  # past the first request's deadline
            second = await client.post("/x", content=b"{}")
            many = await asyncio.gather(*(client.post("/x", content=b"{}") for _ in range(8)))
        return [first.status_code, second.status_code, *(r.status_code for r in many)]

    assert asyncio.run(go()) == [201] * 10


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def go() -> None:
        async with make_client(
            "http://api.test", {}, concurrency=4, timeout=5, transport=_Silent()
        ) as client:
            request = asyncio.create_task(client.post("/x", content=b"{}"))
            await asyncio.sleep(0.01)
            request.cancel()
            await request

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(go())


def test_only_the_requests_past_their_deadline_are_cut() -> None:
    async def go() -> list[str]:
        async with make_client(
            "http://api.test", {}, concurrency=4, timeout=0.2, transport=_Silent()
        ) as slow:
            fast_transport = _Silent(answer_s=0)
            async with make_client(
                "http://api.test", {}, concurrency=4, timeout=5, transport=fast_transport
            ) as fast:
                answers = await asyncio.gather(
                    slow.post("/x", content=b"{}"),
                    fast.post("/x", content=b"{}"),
                    return_exceptions=True,
                )
        return [type(a).__name__ for a in answers]

    assert asyncio.run(go()) == ["ReadTimeout", "Response"]
