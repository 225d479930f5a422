"""The sender over httpx.MockTransport: cases the sandbox cannot produce on demand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from customer_import.contracts import SendItem, SendOutcome
from customer_import.errors import FatalApiError, InputError, RunAborted
from customer_import.send.answers import Disposition, classify, parse_retry_after
from customer_import.send.client import make_client
from customer_import.send.flow import CircuitBreaker, Pacer
from customer_import.send.sender import RetryPolicy, Sender
from customer_import.send.stats import LatencyHistogram

STORED = {
    "externalId": "A",
    "createdAt": "2026-01-01T00:00:00.000Z",
    "updatedAt": "2026-01-01T00:00:00.000Z",
}
FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.005)


@pytest.mark.parametrize(
    ("status", "disposition"),
    [
        (200, Disposition.SUCCESS),
        (201, Disposition.SUCCESS),
        (204, Disposition.SUCCESS),
        (400, Disposition.REJECT),
        (422, Disposition.REJECT),
        (413, Disposition.REJECT),
        (401, Disposition.FATAL),
        (403, Disposition.FATAL),
        (404, Disposition.FATAL),
        (408, Disposition.RETRY),
        (409, Disposition.RETRY),
        (500, Disposition.RETRY),
        (502, Disposition.RETRY),
        (503, Disposition.RETRY),
        (504, Disposition.RETRY),
        (None, Disposition.RETRY),
        (429, Disposition.SLOW_DOWN),
    ],
)
def test_every_answer_is_classified_in_one_place(
    status: int | None, disposition: Disposition
) -> None:
    assert classify(status) is disposition


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (parse_retry_after(later) or 0) <= 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def send(
    handler: Callable[[httpx.Request], httpx.Response],
    items: int = 1,
    concurrency: int = 2,
    policy: RetryPolicy = FAST,
    outcomes: list[SendOutcome] | None = None,
    breaker: CircuitBreaker | None = None,
    batches: Callable[[], AsyncIterator[list[SendItem]]] | None = None,
) -> tuple[list[SendOutcome], Sender]:
    """Send ``items`` items (or what ``batches()`` yields) through ``handler``."""
    outcomes = [] if outcomes is None else outcomes

    async def main() -> Sender:
        client = make_client(
            "http://api.test",
            {"x-api-key": "k"},
            concurrency=concurrency,
            timeout=5,
            transport=httpx.MockTransport(handler),
        )
        async with client:
            sender = Sender(
                client,
                concurrency=concurrency,
                policy=policy,
                on_outcome=outcomes.append,
                breaker=breaker,
            )
            await sender.run(_items(items) if batches is None else batches())
            return sender

    return outcomes, asyncio.run(main())


async def _items(count: int, batch: int = 3) -> AsyncIterator[list[SendItem]]:
    """``count`` items in batches of ``batch``, as the pipeline hands them over."""
    items = [
        SendItem(i + 1, f"id-{i}", f'{{"externalId":"id-{i}","firstName":"y"}}'.encode())
        for i in range(count)
    ]
    for start in range(0, count, batch):
        yield items[start : start + batch]


def answers(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return _as_stored(answer, request)

    return handler


def _as_stored(answer: httpx.Response, request: httpx.Request) -> httpx.Response:
    """A success answers with the customer sent, as the API does (its externalId)."""
    if not 200 <= answer.status_code < 300:
        return answer
    stored = {**json.loads(answer.content), "externalId": json.loads(request.content)["externalId"]}
    return httpx.Response(answer.status_code, json=stored)


def test_a_503_is_retried_then_recorded_as_updated() -> None:
    updated = {**STORED, "updatedAt": "2026-02-01T00:00:00.000Z"}
    outcomes, sender = send(answers(httpx.Response(503), httpx.Response(200, json=updated)))
    assert (outcomes[0].status, outcomes[0].attempts, outcomes[0].http_status) == (
        "updated",
        2,
        200,
    )
    assert sender.stats.retries == 1


def test_created_is_told_apart_by_201_or_equal_timestamps() -> None:
    outcomes, _ = send(answers(httpx.Response(200, json=STORED)))
    assert outcomes[0].status == "created"
    assert outcomes[0].created_at == STORED["createdAt"]


def test_retries_exhausted_give_a_transport_reject() -> None:
    outcomes, sender = send(answers(httpx.Response(503, text="busy")))
    assert outcomes[0].stage == "transport"
    assert outcomes[0].reason == "HTTP 503 busy (after 3 attempts)"
    assert sender.stats.requests == 3


def test_connection_errors_and_timeouts_are_retried() -> None:
    outcomes, _ = send(
        answers(
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.Response(201, json=STORED),
        )
    )
    # The refused connection came before the API had ever answered: it does not use up an
    # attempt (records wait for an API never reached, up to connect_grace_s); the timeout does.
    assert (outcomes[0].status, outcomes[0].attempts) == ("created", 2)


def test_a_refused_connection_uses_up_an_attempt_once_the_api_has_answered() -> None:
    outcomes, _ = send(
        answers(
            httpx.Response(503),
            httpx.ConnectError("refused"),
            httpx.Response(201, json=STORED),
        )
    )
    assert (outcomes[0].status, outcomes[0].attempts) == ("created", 3)


def test_a_lost_connection_every_time_is_explained() -> None:
    outcomes, _ = send(answers(httpx.RemoteProtocolError("peer closed connection")))
    assert outcomes[0].reason == "connection error: peer closed connection (after 3 attempts)"


def test_a_400_rejects_the_row_with_the_servers_message_and_details() -> None:
    error = {
        "error": {
            "code": "VALIDATION_ERROR",
            "message": "Invalid body",
            "details": [{"field": "email", "message": "must be an email"}],
        }
    }
    outcomes, sender = send(answers(httpx.Response(400, json=error)))
    assert outcomes[0].stage == "api"
    assert outcomes[0].reason == "HTTP 400 VALIDATION_ERROR: Invalid body [email: must be an email]"
    assert sender.stats.requests == 1  # never retried


def test_429_waits_for_retry_after_without_using_up_attempts() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "0"})
    handler = answers(limited, limited, limited, limited, httpx.Response(201, json=STORED))
    outcomes, sender = send(handler, policy=RetryPolicy(max_attempts=1, base_delay=0.001))
    assert (outcomes[0].status, outcomes[0].attempts) == ("created", 1)
    assert sender.stats.rate_limited == 4


def test_nothing_but_429_for_too_long_stops_the_run() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_rate_limited_s=0.05)
    with pytest.raises(RunAborted, match="only 429"):
        send(answers(httpx.Response(429, headers={"Retry-After": "0"})), policy=policy)


@pytest.mark.parametrize(
    ("status", "hint"), [(401, "API key"), (403, "permissions"), (404, "base_url")]
)
def test_fatal_answers_stop_the_run_and_leave_the_rest_pending(status: int, hint: str) -> None:
    outcomes: list[SendOutcome] = []
    with pytest.raises(FatalApiError, match=hint):
        send(answers(httpx.Response(status)), items=50, outcomes=outcomes)
    assert outcomes == []  # nothing rejected: unsent records stay pending for a resume


def stored(request: httpx.Request) -> httpx.Response:
    return _as_stored(httpx.Response(201, json=STORED), request)


def test_every_item_of_every_batch_is_sent_once_empty_batches_included() -> None:
    async def batches() -> AsyncIterator[list[SendItem]]:
        items = await anext(_items(7, batch=7))
        for part in (items[:3], [], items[3:4], [], [], items[4:]):
            await asyncio.sleep(0)  # the next batch is being prepared
            yield part

    outcomes, _ = send(stored, concurrency=4, batches=batches)
    assert sorted(o.item.row for o in outcomes) == [1, 2, 3, 4, 5, 6, 7]


def test_a_source_error_mid_file_stops_the_run_after_the_requests_in_flight() -> None:
    async def batches() -> AsyncIterator[list[SendItem]]:
        yield await anext(_items(4, batch=4))
        raise InputError("export.csv: cannot read the file: disk gone")

    outcomes: list[SendOutcome] = []
    with pytest.raises(InputError, match="disk gone"):
        send(stored, outcomes=outcomes, batches=batches)
    assert len(outcomes) == 4  # the items taken before the error are all sent


def test_never_more_requests_in_flight_than_the_concurrency() -> None:
    in_flight, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.002)
        in_flight -= 1
        return _as_stored(httpx.Response(201, json=STORED), request)

    outcomes, sender = send(handler, items=60, concurrency=5)  # type: ignore[arg-type]
    assert len(outcomes) == 60
    assert peak == 5 and sender.stats.max_in_flight == 5


def test_a_long_outage_opens_the_breaker_and_stops_the_run_without_mass_rejects() -> None:
    outcomes: list[SendOutcome] = []
    breaker = CircuitBreaker(threshold=5, probe_every_s=0.01, max_outage_s=0.2)
    with pytest.raises(RunAborted, match="failed every request"):
        send(
            answers(httpx.Response(503)),
            items=200,
            concurrency=4,
            outcomes=outcomes,
            breaker=breaker,
        )
    assert len(outcomes) <= 5  # only records that ran out of attempts before the breaker opened


def test_records_survive_an_outage_shorter_than_the_limit() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return (
            httpx.Response(503)
            if calls <= 40
            else _as_stored(httpx.Response(201, json=STORED), request)
        )

    breaker = CircuitBreaker(threshold=5, probe_every_s=0.01, max_outage_s=30)
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.002)
    outcomes, _ = send(handler, items=30, concurrency=4, policy=policy, breaker=breaker)
    assert sum(o.status == "created" for o in outcomes) >= 26  # at most threshold - 1 ran out
    assert len(outcomes) == 30


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_429_paces_everyone_just_under_what_the_server_admitted() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    for _ in range(600):  # 300 successes a second for two seconds
        clock.now += 1 / 300
        pacer.on_success()
    pacer.on_rate_limited(retry_after=1)
    assert pacer.rate == pytest.approx(0.95 * 300, rel=0.02)
    pacer.on_rate_limited(retry_after=1)  # the same congestion: cut once per cooldown
    assert pacer.rate == pytest.approx(0.95 * 300, rel=0.02)


def test_the_rate_grows_slowly_while_answers_are_good_and_never_past_the_ceiling() -> None:
    clock = FakeClock()
    pacer = Pacer(ceiling=100, clock=clock)
    for _ in range(100):  # the server admits 50 a second
        clock.now += 0.02
        pacer.on_success()
    pacer.on_rate_limited(retry_after=None)
    assert pacer.rate == pytest.approx(47.5, rel=0.02)
    for _ in range(20):
        clock.now += 1
        pacer.on_success()
    assert 47.5 < (pacer.rate or 0) < 47.5 * 1.12  # about 0.5 % a second
    for _ in range(2000):
        clock.now += 1
        pacer.on_success()
    assert pacer.rate == 100


def test_a_long_retry_after_pauses_every_worker() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    pacer.on_rate_limited(retry_after=30)
    assert pacer._paused_until == clock.now + 30


def test_the_api_key_travels_only_in_its_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _as_stored(httpx.Response(201, json=STORED), request)

    send(handler)
    assert seen[0].headers["x-api-key"] == "k"
    assert seen[0].headers["content-type"] == "application/json"
    assert "k" not in str(seen[0].url)


def test_a_token_buckets_first_burst_does_not_inflate_the_pace_for_long() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    for _ in range(300):  # the bucket's burst: 300 answers in a tenth of a second
        clock.now += 0.1 / 300
        pacer.on_success()
    pacer.on_rate_limited(retry_after=1)
    assert (pacer.rate or 0) > 1000  # all it could know so far
    for _ in range(90):  # then the bucket's steady 300 a second, with 429s beyond it
        clock.now += 1 / 300
        pacer.on_success()
    pacer.on_rate_limited(retry_after=1)
    assert pacer.rate == pytest.approx(0.95 * 300, rel=0.05)
    for _ in range(90):
        clock.now += 1 / 300
        pacer.on_success()
    pacer.on_rate_limited(retry_after=1)  # the same spell: no compounding below the measure
    assert pacer.rate == pytest.approx(0.95 * 300, rel=0.05)


def test_latency_percentiles_are_read_from_buckets_two_percent_wide() -> None:
    latency = LatencyHistogram()
    assert latency.percentile(50) is None
    for ms in range(1, 101):
        latency.add(float(ms))
    assert latency.count == 100
    assert latency.percentile(50) == pytest.approx(50, rel=0.02)
    assert latency.percentile(99) == pytest.approx(99, rel=0.02)
    latency.add(0.001)  # below the first bucket: counted in it
    latency.add(60_000.0)
    assert latency.count == 102
    assert latency.percentile(0.5) == 0.01
    assert latency.percentile(100) == pytest.approx(60_000, rel=0.02)
