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
import email.utils
import enum
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import aiohttp
import httpx
import pydantic_core

from customer_import.api_client import ApiClient
from customer_import.errors import FatalApiError, RunAborted
from customer_import.flow import CircuitBreaker, Pacer

PATH: Final = "/customers/add-update"
_ERROR_BODY_LIMIT: Final = 500


class Disposition(enum.Enum):
    SUCCESS = "success"
    REJECT = "reject"  # this row is wrong: 400/422 and other 4xx
    RETRY = "retry"  # transient: 408/409/5xx, connection errors, timeouts
    SLOW_DOWN = "slow_down"  # 429: retried without using up the row's attempts
    FATAL = "fatal"  # 401/403/404: every further request would fail too


_FATAL_HINTS: Final = {
    401: "the API key or merchant id was refused: check the credential environment variables",
    403: "the API key is not allowed to write customers: check the key's permissions",
    404: "the endpoint was not found: check api.base_url (or --base-url)",
}


def classify(status: int | None) -> Disposition:
    """The one place that decides what an answer means; ``None`` is a transport error."""
    if status is None or status in (408, 409) or status >= 500:
        return Disposition.RETRY
    if 200 <= status < 300:
        return Disposition.SUCCESS
    if status == 429:
        return Disposition.SLOW_DOWN
    if status in _FATAL_HINTS:
        return Disposition.FATAL
    return Disposition.REJECT


class SendItem(NamedTuple):
    row: int
    external_id: str
    body: bytes


class SendOutcome(NamedTuple):
    """What happened to one item. ``status`` is created/updated, or None when rejected.

    Items and outcomes are named tuples: one of each a request, and a tuple is built in a
    fraction of a frozen dataclass's time.
    """

    item: SendItem
    status: str | None
    http_status: int | None
    attempts: int
    created_at: str | None = None
    updated_at: str | None = None
    stage: str | None = None  # "api" or "transport" when rejected
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_rate_limited_s: float = 600.0
    """Stop (resumable) when the server has answered nothing but 429 for this long."""

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter (AWS architecture blog): spreads retries out."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class LatencyHistogram:
    """Fixed log-spaced buckets (about 2 % wide): percentiles in constant memory."""

    _GROWTH: Final = 1.02
    _PER_LOG: Final = 1 / math.log(_GROWTH)
    _LOG_MIN: Final = math.log(0.01)

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0

    def add(self, ms: float) -> None:
        bucket = 0 if ms <= 0.01 else int((math.log(ms) - self._LOG_MIN) * self._PER_LOG) + 1
        self._counts[bucket] = self._counts.get(bucket, 0) + 1
        self.count += 1

    def percentile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank, seen = q / 100 * self.count, 0
        for bucket in sorted(self._counts):
            seen += self._counts[bucket]
            if seen >= rank:
                return round(0.01 * self._GROWTH**bucket, 2)
        return None


@dataclass(slots=True)
class SendStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


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
                    outcome = await self._send(item, task)
                except _Abandoned:
                    return
                except RunAborted as exc:
                    self.stop(exc)
                    return
                self._on_outcome(outcome)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # stop() ended this worker's wait (see _end_waits); its item stays pending
        finally:
            self._waiting.discard(task)

    async def _send(self, item: SendItem, task: asyncio.Task[object]) -> SendOutcome:
        attempts = 0
        while True:
            await self._breaker.admit()
            sent_at = await self._pacer.before_request()
            response, error = await self._post(item, task)
            disposition = classify(None if response is None else response.status_code)
            if disposition is Disposition.RETRY:
                attempts = await self._after_failure(attempts)
                if attempts >= self._policy.max_attempts:
                    return _outcome(item, disposition, response, error, attempts)
                self.stats.retries += 1
            elif disposition is Disposition.SLOW_DOWN:
                await self._after_rate_limited(response, sent_at)
            else:
                self._after_answer(disposition, sent_at)
                return _outcome(item, disposition, response, error, attempts + 1)
            if self._stopping:
                raise _Abandoned

    async def _after_failure(self, attempts: int) -> int:
        """A transient failure uses up an attempt, unless an outage is under way (breaker open)."""
        self._breaker.on_failure()
        if self._breaker.is_open:
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
            raise RunAborted(
                f"the API has answered only 429 (rate limited) for over "
                f"{self._policy.max_rate_limited_s:.0f} s; resume later or set api.rate_limit"
            )
        retry_after = parse_retry_after(response.headers.get("retry-after")) if response else None
        self._pacer.on_rate_limited(retry_after, sent_at)
        await asyncio.sleep(retry_after if retry_after is not None else self._policy.backoff(2))

    def _after_answer(self, disposition: Disposition, sent_at: float) -> None:
        self._breaker.on_answer()
        self._last_answer = time.monotonic()
        if disposition is Disposition.SUCCESS:
            self._pacer.on_success(sent_at)

    async def _post(
        self, item: SendItem, task: asyncio.Task[object]
    ) -> tuple[httpx.Response | None, str | None]:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        started = time.perf_counter()
        self._waiting.discard(task)  # in flight: a stop lets this request finish
        try:
            return await self._client.post(PATH, content=item.body), None
        except (httpx.TransportError, TimeoutError, OSError) as exc:
            return None, _describe_transport_error(exc)
        finally:
            self._waiting.add(task)
            stats.in_flight -= 1
            stats.latency.add((time.perf_counter() - started) * 1000)


def _outcome(
    item: SendItem,
    disposition: Disposition,
    response: httpx.Response | None,
    error: str | None,
    attempts: int,
) -> SendOutcome:
    if disposition is Disposition.SUCCESS:
        assert response is not None
        return _success(item, response, attempts)
    if disposition is Disposition.FATAL:
        assert response is not None
        hint = _FATAL_HINTS[response.status_code]
        raise FatalApiError(f"HTTP {response.status_code}: {hint}", response.status_code)
    if response is None:
        return SendOutcome(
            item,
            None,
            None,
            attempts,
            stage="transport",
            reason=f"{error} (after {attempts} attempts)",
        )
    stage = "api" if disposition is Disposition.REJECT else "transport"
    reason = describe_error_response(response)
    if stage == "transport":
        reason += f" (after {attempts} attempts)"
    return SendOutcome(item, None, response.status_code, attempts, stage=stage, reason=reason)


def _success(item: SendItem, response: httpx.Response, attempts: int) -> SendOutcome:
    try:  # pydantic-core's parser: a third of json.loads's time on the stored customer
        stored = pydantic_core.from_json(response.content)
    except ValueError:
        stored = {}
    created_at = stored.get("createdAt") if isinstance(stored, dict) else None
    updated_at = stored.get("updatedAt") if isinstance(stored, dict) else None
    created = response.status_code == 201 or (created_at is not None and created_at == updated_at)
    status = "created" if created else "updated"
    return SendOutcome(item, status, response.status_code, attempts, created_at, updated_at)


def describe_error_response(response: httpx.Response) -> str:
    """'HTTP 400 VALIDATION_ERROR: message [email: must be valid]' from the documented envelope."""
    try:
        error = response.json()["error"]
        details = "; ".join(
            f"{d.get('field')}: {d.get('message')}" for d in error.get("details") or []
        )
        text = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
        if details:
            text += f" [{details}]"
    except (ValueError, KeyError, TypeError, AttributeError):
        text = response.text[:_ERROR_BODY_LIMIT].strip()
    return f"HTTP {response.status_code} {text}".rstrip()


def _describe_transport_error(exc: Exception) -> str:
    kind = "timeout" if _is_timeout(exc) else "connection error"
    detail = str(exc) or type(exc).__name__
    return f"{kind}: {detail}"


def _is_timeout(exc: Exception) -> bool:
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        # httpx-aiohttp maps every aiohttp connection error, a reset too, to httpx.ConnectTimeout
        return isinstance(cause, TimeoutError)
    return isinstance(exc, httpx.TimeoutException | TimeoutError)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
