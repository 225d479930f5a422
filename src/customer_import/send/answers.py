"""What an answer means: the one place that decides success, reject, retry, slow down or stop,
and the outcome a record gets from its last answer.

Only the API's own answer is a success: a 2xx whose body is not the stored customer (HTML from a
proxy, an empty body, another JSON) is a protocol error, retried like a 5xx. A redirect stops
the run: it is never followed, since the API key would go along to wherever it points.
"""

from __future__ import annotations

import email.utils
import enum
import time
from datetime import UTC
from typing import Any, Final, NamedTuple

import aiohttp
import httpx
import pydantic_core

from customer_import.contracts import RecordStatus, RejectStage, SendItem, SendOutcome
from customer_import.errors import FatalApiError

_ERROR_BODY_LIMIT: Final = 500


class Disposition(enum.Enum):
    SUCCESS = "success"
    REJECT = "reject"  # this row is wrong: 400/422 and other 4xx
    RETRY = "retry"  # transient: 408/409/5xx, no connection, timeouts, not the API's answer
    SLOW_DOWN = "slow_down"  # 429: retried without using up the row's attempts
    FATAL = "fatal"  # 401/403/404, a redirect: every further request would fail too


_FATAL_HINTS: Final = {
    401: "the API key or merchant id was refused: check the credential environment variables",
    403: "the API key is not allowed to write customers: check the key's permissions",
    404: "the endpoint was not found: check api.base_url (or --base-url)",
}


class Verdict(NamedTuple):
    disposition: Disposition
    problem: str | None = None
    """What was wrong with an answer that is retried (a 2xx that is not the API's)."""
    stored: dict[str, Any] | None = None
    """A success's customer, as the API stored it."""


_NO_ANSWER: Final = Verdict(Disposition.RETRY)


def classify(status: int | None) -> Disposition:
    """What a status means; ``None`` is a transport error."""
    if status is None or status in (408, 409) or status >= 500:
        return Disposition.RETRY
    if 200 <= status < 300:
        return Disposition.SUCCESS
    if status == 429:
        return Disposition.SLOW_DOWN
    if status in _FATAL_HINTS or 300 <= status < 400:
        return Disposition.FATAL
    return Disposition.REJECT


def judge(response: httpx.Response | None, item: SendItem) -> Verdict:
    """The one place that decides what an answer means (None: no answer came)."""
    if response is None:
        return _NO_ANSWER
    disposition = classify(response.status_code)
    if disposition is not Disposition.SUCCESS:
        return Verdict(disposition)
    stored = _parsed(response)
    if not isinstance(stored, dict) or stored.get("externalId") != item.external_id:
        return Verdict(Disposition.RETRY, not_the_api(response))
    return Verdict(Disposition.SUCCESS, stored=stored)


def not_the_api(response: httpx.Response) -> str:
    kind = response.headers.get("content-type") or "no content type"
    return (
        f"HTTP {response.status_code} whose body is not the customer the API stores ({kind}, "
        f"{len(response.content)} bytes): is api.base_url the API?"
    )


def outcome_of(
    item: SendItem,
    verdict: Verdict,
    response: httpx.Response | None,
    error: str | None,
    attempts: int,
) -> SendOutcome:
    """The record's outcome from its last answer; FatalApiError when the run must stop."""
    disposition = verdict.disposition
    if disposition is Disposition.SUCCESS:
        assert response is not None and verdict.stored is not None
        return _success(item, response, verdict.stored, attempts)
    if disposition is Disposition.FATAL:
        assert response is not None
        raise _fatal(response)
    if response is None or verdict.problem is not None:
        reason = f"{error or verdict.problem} (after {attempts} attempts)"
        status = None if response is None else response.status_code
        return SendOutcome(item, None, status, attempts, stage=RejectStage.TRANSPORT, reason=reason)
    stage = RejectStage.API if disposition is Disposition.REJECT else RejectStage.TRANSPORT
    reason = describe_error_response(response)
    if stage is RejectStage.TRANSPORT:
        reason += f" (after {attempts} attempts)"
    return SendOutcome(item, None, response.status_code, attempts, stage=stage, reason=reason)


def _fatal(response: httpx.Response) -> FatalApiError:
    status = response.status_code
    hint = _FATAL_HINTS.get(status)
    if hint is None:  # a redirect
        location = response.headers.get("location") or "no Location given"
        hint = (
            f"the API answered with a redirect to {location}: redirects are never followed "
            "(the API key would go along); set api.base_url to the API's own address"
        )
    return FatalApiError(f"HTTP {status}: {hint}", status)


def _success(
    item: SendItem, response: httpx.Response, stored: dict[str, Any], attempts: int
) -> SendOutcome:
    created_at, updated_at = stored.get("createdAt"), stored.get("updatedAt")
    created = response.status_code == 201 or (created_at is not None and created_at == updated_at)
    status = RecordStatus.CREATED if created else RecordStatus.UPDATED
    return SendOutcome(item, status, response.status_code, attempts, created_at, updated_at)


def _parsed(response: httpx.Response) -> object:
    try:  # pydantic-core's parser: a third of json.loads's time on the stored customer, and
        # half of that again without its cache of strings (hashing every one costs more than
        # the answer's few repeated values save)
        return pydantic_core.from_json(response.content, cache_strings=False)
    except (ValueError, RecursionError):
        return None


def is_error_envelope(response: httpx.Response) -> bool:
    """The API's error body: ``{"error": {"code": ..., "message": ...}}``."""
    body = _parsed(response)
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


def describe_error_response(response: httpx.Response) -> str:
    """'HTTP 400 VALIDATION_ERROR: message [email: must be valid]' from the documented envelope,
    else the start of the body's text."""
    body = _parsed(response)
    error = body.get("error") if isinstance(body, dict) else None
    text = ""
    if isinstance(error, dict):
        details = error.get("details")
        listed = details if isinstance(details, list) else []
        text = ": ".join(_text(error.get(k)) for k in ("code", "message") if error.get(k))
        shown = [
            f"{_text(d.get('field'))}: {_text(d.get('message'))}"
            for d in listed
            if isinstance(d, dict)
        ]
        if shown:
            text += f" [{'; '.join(shown)}]"
    if not isinstance(error, dict) or not text:
        text = response.text[:_ERROR_BODY_LIMIT].strip()
    return f"HTTP {response.status_code} {text}".rstrip()


def _text(value: object) -> str:
    return "" if value is None else str(value)


def describe_transport_error(exc: Exception) -> str:
    kind = "timeout" if _is_timeout(exc) else "connection error"
    detail = str(exc) or type(exc).__name__
    return f"{kind}: {detail}"


def could_not_connect(exc: Exception) -> bool:
    """No connection was made (the name did not resolve, it was refused, TLS failed)."""
    return isinstance(exc, httpx.ConnectError) or isinstance(
        exc.__cause__, aiohttp.ClientConnectorError
    )


def _is_timeout(exc: Exception) -> bool:
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        # httpx-aiohttp maps every aiohttp connection error, a reset too, to httpx.ConnectTimeout
        return isinstance(cause, TimeoutError)
    return isinstance(exc, httpx.TimeoutException | TimeoutError)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (in GMT, as
    HTTP dates always are, even one written without a zone)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())
