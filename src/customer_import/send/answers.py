"""What an answer means: the one place that decides success, reject, retry, slow down or stop,
and the outcome a record gets from its last answer."""

from __future__ import annotations

import email.utils
import enum
import time
from typing import Final

import aiohttp
import httpx
import pydantic_core

from customer_import.contracts import RecordStatus, RejectStage, SendItem, SendOutcome
from customer_import.errors import FatalApiError

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


def outcome_of(
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
        reason = f"{error} (after {attempts} attempts)"
        return SendOutcome(item, None, None, attempts, stage=RejectStage.TRANSPORT, reason=reason)
    stage = RejectStage.API if disposition is Disposition.REJECT else RejectStage.TRANSPORT
    reason = describe_error_response(response)
    if stage is RejectStage.TRANSPORT:
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
    status = RecordStatus.CREATED if created else RecordStatus.UPDATED
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


def describe_transport_error(exc: Exception) -> str:
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
