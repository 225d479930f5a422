"""The run's sender, built from the job's ``[api]`` table: client, retry policy, pacer, breaker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

from customer_import.config import ApiConfig, Credentials
from customer_import.contracts import SendLimits, SendOutcome
from customer_import.send.client import make_client
from customer_import.send.flow import CircuitBreaker, Pacer
from customer_import.send.sender import RetryPolicy, Sender


@asynccontextmanager
async def open_sender(
    api: ApiConfig,
    credentials: Credentials,
    limits: SendLimits,
    on_outcome: Callable[[SendOutcome], None],
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Sender]:
    """A sender over a client whose pool holds ``limits.concurrency`` connections, closed on
    exit. ``transport`` replaces the one ``api.transport`` names (tests inject one)."""
    base_url, concurrency, rate_limit = limits
    headers = {"x-api-key": credentials.api_key, "x-merchant-id": credentials.merchant_id}
    client = make_client(
        base_url,
        headers,
        concurrency=concurrency,
        timeout=api.timeout,
        transport_name=api.transport,
        transport=transport,
    )
    async with client:
        yield Sender(
            client,
            concurrency=concurrency,
            policy=RetryPolicy(
                api.max_attempts,
                api.backoff_base,
                api.backoff_max,
                max_rate_limited_s=api.max_rate_limited_s,
                connect_grace_s=api.connect_grace_s,
            ),
            on_outcome=on_outcome,
            pacer=Pacer(ceiling=rate_limit),
            breaker=CircuitBreaker(
                api.breaker_failures, api.breaker_probe_s, max_outage_s=api.max_outage_s
            ),
        )
