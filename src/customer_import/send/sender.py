"""Bounded, retrying upserts through an injected ``ApiClient`` (httpx requests, any transport).

A fixed pool of ``concurrency`` workers takes items one batch at a time (a batch of the
file), so memory does not grow with the file and never more than ``concurrency`` requests
are in flight. Workers pop items from a shared deque and refill it from the source when it
runs dry: no task switch or queue handoff per item.
What an answer means is decided in one place (``classify``): success, reject the row,
retry, slow down, or stop the run. Stopping lets requests in flight finish and ends every
wait at once (a backoff, a Retry-After, a quota pause, an open circuit breaker).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx

from customer_import.contracts import SendItem, SendOutcome
from customer_import.errors import ApiUnavailable, RateLimited, RunAborted
from customer_import.send.answers import (
    Disposition,
    could_not_connect,
    describe_transport_error,
    judge,
    outcome_of,
    parse_retry_after,
)
from customer_import.send.client import ApiClient
from customer_import.send.flow import CircuitBreaker, Pacer
from customer_import.send.front_door import FrontDoor
from customer_import.send.stats import SendStats

PATH: Final = "/customers/add-update"
_ABSURD_WAIT_S: Final = 366 * 24 * 3600.0  # a Retry-After beyond a year is no date to give


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_rate_limited_s: float = 600.0
    """Stop (resumable) when the server has answered nothing but 429 for this long."""
    connect_grace_s: float = 30.0
    """Stop (resumable) when no request has reached the API for this long since the first."""

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter (AWS architecture blog): spreads retries out."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class _Abandoned(Exception):
    """The run is stopping: leave this item without an outcome (pending for a resume)."""


class Sender:
    """Sends items with ``concurrency`` workers; reports each final outcome to ``on_outcome``.

    On a fatal answer, or when ``stop()`` is called, workers take no new items, requests
    in flight are allowed to finish, workers that are waiting (to retry, for a Retry-After,
    for the circuit breaker) stop waiting, and items without an outcome stay pending.
    """

    def __init__(
        self,
        client: ApiClient,
        *,
        concurrency: int,
        policy: RetryPolicy,
        on_outcome: Callable[[SendOutcome], None],
        pacer: Pacer | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._client = client
        self._pacer = pacer or Pacer()
        self._breaker = breaker or CircuitBreaker()
        self._last_answer = time.monotonic()
        self._concurrency = concurrency
        self._policy = policy
        self._on_outcome = on_outcome
        self._stopping = False
        self._failure: BaseException | None = None
        self._ready: deque[SendItem] = deque()  # taken from the source, not yet sent
        self._source: AsyncIterator[Sequence[SendItem]] | None = None
        self._exhausted = False
        self._refilling = asyncio.Lock()
        self._waiting: set[asyncio.Task[object]] = set()  # running workers, not sending
        self._answered = False  # some request has had an HTTP answer
        self._first_failure: float | None = None
        self._connect_error: str | None = None
        self._front_door = FrontDoor()
        self.stats = SendStats()

    async def run(self, batches: AsyncIterator[Sequence[SendItem]]) -> None:
        """Send every item of every batch; raises the failure that stopped the run, after
        the requests in flight have ended."""
        self._source = batches
        await asyncio.gather(*(self._worker() for _ in range(self._concurrency)))
        if self._failure is not None:
            raise self._failure

    def stop(self, failure: BaseException | None = None) -> None:
        """Take no new items; those not sent stay pending. The first failure given is raised."""
        if self._failure is None:
            self._failure = failure
        if self._stopping:
            return
        self._stopping = True
        self._ready.clear()
        self._end_waits()

    def _end_waits(self) -> None:
        """Cancel every worker that is waiting rather than sending: its item stays pending.

        Without this a stop would last as long as the longest wait: a Retry-After of an hour,
        or the breaker's whole ``max_outage_s``. A worker with a request in flight is left
        to finish it (and stops at its next turn), and so is the one calling ``stop()``.
        """
        current = asyncio.current_task()
        for worker in self._waiting:
            if worker is not current:
                worker.cancel()

    async def _next(self) -> SendItem | None:
        """The next item to send; None once the source is exhausted or the run is stopping."""
        while not self._ready:
            if self._exhausted or self._stopping:
                return None
            async with self._refilling:  # one worker refills; the others wait for its batch
                if not self._ready and not self._exhausted:
                    await self._refill()
        return self._ready.popleft()

    async def _refill(self) -> None:
        assert self._source is not None
        try:
            batch = await anext(self._source, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a source error mid-file stops the run like any other
            self._exhausted = True
            self.stop(exc)
            return
        if batch is None:
            self._exhausted = True
        elif not self._stopping:
            self._ready.extend(batch)

    async def _worker(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            while not self._stopping and (item := await self._next()) is not None:
                try:
                    self._on_outcome(await self._send(item, task))
                except _Abandoned:
                    return
                except RunAborted as exc:  # a fatal answer, or the outcome not recorded
                    self.stop(exc)
                    return
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # stop() ended this worker's wait (see _end_waits); its item stays pending
        finally:
            self._waiting.discard(task)

    async def _send(self, item: SendItem, task: asyncio.Task[object]) -> SendOutcome:
        attempts = 0
        while True:
            if self._breaker.is_open:
                await self._breaker.admit()
            sent_at = self._pacer.free_now()  # no pace, pause or hold: no wait to await
            if sent_at is None:
                sent_at = await self._pacer.before_request()
            response, error, unreached = await self._post(item, task)
            verdict = judge(response, item)
            if response is not None:
                self._answered = True
                if self._front_door.watching:
                    self._front_door.check(response, verdict.disposition)
            if verdict.disposition is Disposition.RETRY:
                self._check_reached(unreached, error)
                attempts = await self._after_failure(attempts, error or verdict.problem, unreached)
                if attempts >= self._policy.max_attempts:
                    return outcome_of(item, verdict, response, error, attempts)
                self.stats.retries += 1
            elif verdict.disposition is Disposition.SLOW_DOWN:
                await self._after_rate_limited(response, sent_at)
            else:
                self._after_answer(verdict.disposition, sent_at)
                return outcome_of(item, verdict, response, error, attempts + 1)
            if self._stopping:
                raise _Abandoned

    def _check_reached(self, unreached: bool, error: str | None) -> None:
        """Stop when no request has had an answer since the first was tried, some of them
        failing to connect (the name, a refusal, TLS; others may time out, as a DNS lookup
        does), for longer than ``connect_grace_s``: the URL or the network is wrong."""
        if self._answered:
            return
        now = time.monotonic()
        self._first_failure = self._first_failure or now
        if unreached:
            self._connect_error = error  # the OS error of the last attempt to connect
            # workers waiting for the breaker stop at the grace too, not at their next probe
            deadline = self._first_failure + self._policy.connect_grace_s
            self._breaker.give_up_at(deadline, self._never_reached)
        if self._connect_error and now - self._first_failure > self._policy.connect_grace_s:
            self._never_reached()

    def _never_reached(self) -> None:
        assert self._first_failure is not None
        raise ApiUnavailable(
            f"no request reached the API at {self._client.base_url} in "
            f"{time.monotonic() - self._first_failure:.0f} s ({self._connect_error}): check "
            "api.base_url, the network, the proxy; then run again with --resume"
        )

    async def _after_failure(self, attempts: int, error: str | None, unreached: bool) -> int:
        """A transient failure uses up an attempt, unless an outage is under way (breaker open)
        or the API was never reached yet (records wait for it, up to ``connect_grace_s``)."""
        self._breaker.on_failure(error)
        if self._breaker.is_open:
            return attempts
        if unreached and not self._answered:
            await asyncio.sleep(self._policy.backoff(max(1, attempts)))
            return attempts
        attempts += 1
        if attempts < self._policy.max_attempts:
            await asyncio.sleep(self._policy.backoff(attempts))
        return attempts

    async def _after_rate_limited(self, response: httpx.Response | None, sent_at: float) -> None:
        """429: never counted against the attempts; this request waits, everyone slows down."""
        self.stats.rate_limited += 1
        self._breaker.on_answer()
        if time.monotonic() - self._last_answer > self._policy.max_rate_limited_s:
            raise RateLimited(
                f"the API has answered only 429 (rate limited) for over "
                f"{self._policy.max_rate_limited_s:.0f} s; resume later or set api.rate_limit"
            )
        retry_after = parse_retry_after(response.headers.get("retry-after")) if response else None
        if retry_after is not None and retry_after > self._policy.max_rate_limited_s:
            raise RateLimited(
                f"the API asks to wait {retry_after:.0f} s before the next request (Retry-After), "
                f"longer than api.max_rate_limited_s = {self._policy.max_rate_limited_s:.0f}: "
                f"{_when_again(retry_after)}"
            )
        self._pacer.on_rate_limited(retry_after, sent_at)
        await asyncio.sleep(retry_after if retry_after is not None else self._policy.backoff(2))

    def _after_answer(self, disposition: Disposition, sent_at: float) -> None:
        self._breaker.on_answer()
        self._last_answer = time.monotonic()
        if disposition is Disposition.SUCCESS:
            self._pacer.on_success(sent_at)

    async def _post(
        self, item: SendItem, task: asyncio.Task[object]
    ) -> tuple[httpx.Response | None, str | None, bool]:
        """The answer, or no answer with what went wrong and whether no connection was made."""
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        started = time.perf_counter()
        self._waiting.discard(task)  # in flight: a stop lets this request finish
        try:
            return await self._client.post(PATH, content=item.body), None, False
        except (httpx.RequestError, TimeoutError, OSError) as exc:
            return None, describe_transport_error(exc), could_not_connect(exc)
        finally:
            self._waiting.add(task)
            stats.in_flight -= 1
            stats.latency.add((time.perf_counter() - started) * 1000)


def _when_again(retry_after: float) -> str:
    if retry_after > _ABSURD_WAIT_S:
        return "a wait no API means (a broken header?); run again with --resume later"
    when = datetime.now(UTC) + timedelta(seconds=retry_after)
    again = when.isoformat(timespec="seconds")
    return f"it takes requests again from {again}; run again with --resume then"
