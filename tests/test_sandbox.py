"""The sandbox behaves like the documented customer API, rehearses trouble, and keeps secrets.

Most tests share one server (module fixture) and use their own externalIds; a test that changes
server-wide state (a revoked key, faults, a database file) starts its own.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from customer_import.sandbox.app import validate_customer
from customer_import.sandbox.cli import add_arguments, fault_settings, option_without_effect
from customer_import.sandbox.faults import Drop, Faults, FaultSettings, TokenBucket
from customer_import.sandbox.storage import CustomerStore, format_timestamp
from customer_import.sandbox.testing import SandboxError, SandboxResponse, SandboxServer

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_ids = itertools.count()


def new_id() -> str:
    """An externalId no other test uses, so tests can share one server."""
    return f"T-{next(_ids):05d}"


def customer(external_id: str, **fields: Any) -> dict[str, Any]:
    return {"externalId": external_id, "firstName": "Ada", **fields}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    """One server for the module (overrides conftest's per-test one: each start costs time)."""
    with SandboxServer() as server:
        yield server


@pytest.fixture(scope="module")
def slow_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(latency_ms=300) as server:
        yield server


@pytest.fixture
def rehearsal(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The module's server as a fresh one (no customers, zero stats), for a test that sets
    faults: one server's start saved a test; the faults are dropped after it."""
    sandbox.reset()
    yield sandbox
    sandbox.set_faults()


def assert_error(response: SandboxResponse, status: int, code: str) -> dict[str, Any]:
    """Check the API's error envelope and return its ``error`` object."""
    assert response.status == status, response.body
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert isinstance(error["details"], list)
    return error


# --- the documented API ---


def test_root_answers_name_and_version_without_auth(sandbox: SandboxServer) -> None:
    response = sandbox.request("GET", "/", auth=False)

    assert response.status == 200
    assert response.json()["name"] == "customer-import sandbox"
    assert response.json()["version"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no headers"),
        pytest.param({"x-merchant-id": "test-merchant"}, id="missing key"),
        pytest.param({"x-api-key": "wrong", "x-merchant-id": "test-merchant"}, id="wrong key"),
        pytest.param({"x-api-key": "test-key"}, id="missing merchant"),
        pytest.param({"x-api-key": "test-key", "x-merchant-id": "other"}, id="wrong merchant"),
    ],
)
def test_bad_credentials_are_401_and_write_nothing(
    sandbox: SandboxServer, headers: dict[str, str]
) -> None:
    external_id = new_id()

    response = sandbox.request(
        "POST",
        "/customers/add-update",
        json_body=customer(external_id),
        headers=headers,
        auth=False,
    )

    error = assert_error(response, 401, "UNAUTHORIZED")
    assert error["details"] == []
    assert sandbox.get(external_id) is None


@pytest.mark.parametrize(
    ("path", "method"),
    [("/customers/x", "GET"), ("/customers?limit=5", "GET")],
)
def test_reads_require_the_same_credentials(sandbox: SandboxServer, path: str, method: str) -> None:
    assert_error(sandbox.request(method, path, auth=False), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"firstName": "Ada"}, "externalId", "is required"),
        ({"externalId": "X"}, "firstName", "is required"),
        ({"externalId": " ", "firstName": "Ada"}, "externalId", "must not be empty"),
        ({"externalId": "X", "firstName": ""}, "firstName", "must not be empty"),
        ({"externalId": 7, "firstName": "Ada"}, "externalId", "must be a string"),
        (customer("X", lastName=None), "lastName", "must be a string"),
        (customer("X", email="ada@example"), "email", "must be a valid email address"),
        (customer("X", email="ada lovelace@example.com"), "email", "must be a valid email address"),
        (customer("X", email="a@b@example.com"), "email", "must be a valid email address"),
        (customer("X", phoneNumber=1234567890), "phoneNumber", "must be a string"),
        (customer("X", active="true"), "active", "must be a boolean"),
        (customer("X", active=1), "active", "must be a boolean"),
        (customer("X", nickname="Ada"), "nickname", "is not a known field"),
        (customer("X", notificationOptions=True), "notificationOptions", "must be an object"),
        (
            customer("X", notificationOptions={"notifyEmail": "yes"}),
            "notificationOptions.notifyEmail",
            "must be a boolean",
        ),
        (
            customer("X", notificationOptions={"notifySms": True}),
            "notificationOptions.notifySms",
            "is not a known field",
        ),
        (["X"], "body", "must be a JSON object"),
    ],
)
def test_invalid_bodies_are_400_with_the_field_in_details(
    sandbox: SandboxServer, body: Any, field: str, message: str
) -> None:
    response = sandbox.request("POST", "/customers/add-update", json_body=body)

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"] == [{"field": field, "message": message}]
    assert f"{field} {message}" in error["message"]


def test_every_problem_of_a_body_is_reported() -> None:
    details = validate_customer({"firstName": 1, "email": "x", "extra": 0})

    assert [d["field"] for d in details] == ["externalId", "firstName", "email", "extra"]


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_400(sandbox: SandboxServer, body: bytes) -> None:
    response = sandbox.request("POST", "/customers/add-update", body=body)

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == "body"


def test_unknown_path_is_404_not_found_envelope(sandbox: SandboxServer) -> None:
    response = sandbox.request("POST", "/v1/customers/add-update", json_body=customer("X"))

    assert_error(response, 404, "NOT_FOUND")


def test_wrong_method_is_405_envelope(sandbox: SandboxServer) -> None:
    assert_error(sandbox.request("DELETE", "/customers/add-update"), 405, "METHOD_NOT_ALLOWED")


def test_create_is_201_with_equal_timestamps(sandbox: SandboxServer) -> None:
    body = customer(
        new_id(),
        lastName="Lovelace",
        email="ada@example.com",
        phoneNumber="+441234567890",
        active=True,
        notificationOptions={"notifyEmail": True, "notifyPhone": False},
    )

    response = sandbox.add_update(body)

    assert response.status == 201
    stored = response.json()
    assert TIMESTAMP.fullmatch(stored["createdAt"])
    assert stored["createdAt"] == stored["updatedAt"]
    assert {k: v for k, v in stored.items() if not k.endswith("At")} == body
    assert sandbox.get(body["externalId"]) == stored


def test_update_is_200_keeps_created_at_and_moves_updated_at(sandbox: SandboxServer) -> None:
    external_id = new_id()
    created = sandbox.add_update(customer(external_id)).json()

    response = sandbox.add_update(customer(external_id, firstName="Augusta"))

    assert response.status == 200
    updated = response.json()
    assert updated["firstName"] == "Augusta"
    assert updated["createdAt"] == created["createdAt"]
    assert updated["updatedAt"] > created["updatedAt"]


def test_partial_update_keeps_stored_fields_and_merges_notification_options(
    sandbox: SandboxServer,
) -> None:
    external_id = new_id()
    sandbox.add_update(
        customer(
            external_id,
            lastName="Lovelace",
            email="ada@example.com",
            active=True,
            notificationOptions={"notifyEmail": True, "notifyPhone": True},
        )
    )

    response = sandbox.add_update(
        customer(external_id, active=False, notificationOptions={"notifyPhone": False})
    )

    stored = response.json()
    assert stored["lastName"] == "Lovelace"
    assert stored["email"] == "ada@example.com"
    assert stored["active"] is False
    assert stored["notificationOptions"] == {"notifyEmail": True, "notifyPhone": False}


def test_get_one_customer_with_any_characters_in_its_id(sandbox: SandboxServer) -> None:
    external_id = f"{new_id()}/ä b?c#d"
    sandbox.add_update(customer(external_id))

    assert sandbox.get(external_id)["externalId"] == external_id  # type: ignore[index]
    assert sandbox.get(new_id()) is None


def test_get_absent_customer_is_404_not_found(sandbox: SandboxServer) -> None:
    assert_error(sandbox.request("GET", f"/customers/{new_id()}"), 404, "NOT_FOUND")


def test_customers_are_listed_in_pages_of_at_most_100(sandbox: SandboxServer) -> None:
    ids = [new_id() for _ in range(105)]
    for external_id in ids:
        sandbox.add_update(customer(external_id))

    first = sandbox.request("GET", "/customers").json()
    capped = sandbox.request("GET", "/customers?limit=1000").json()
    total = capped["total"]
    last = sandbox.request("GET", f"/customers?limit=100&offset={total - 5}").json()

    assert (len(first["data"]), first["limit"], first["offset"]) == (20, 20, 0)
    assert (len(capped["data"]), capped["limit"]) == (100, 100)
    assert [c["externalId"] for c in last["data"]] == ids[-5:]
    listed = [c["externalId"] for c in sandbox.customers()]
    assert len(listed) == total
    assert [i for i in listed if i in set(ids)] == ids


@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "limit=abc", "offset=-5", "limit=1e3"])
def test_bad_paging_parameters_are_400(sandbox: SandboxServer, query: str) -> None:
    assert_error(sandbox.request("GET", f"/customers?{query}"), 400, "VALIDATION_ERROR")


def test_customers_are_scoped_per_merchant() -> None:
    store = CustomerStore()
    store.upsert("merchant-a", customer("C-1"))

    assert store.get("merchant-b", "C-1") is None
    assert store.upsert("merchant-b", customer("C-1")).created
    assert store.page("merchant-a", 10, 0)[1] == 1


def test_timestamps_are_utc_with_milliseconds() -> None:
    assert format_timestamp(1_795_939_200_123) == "2026-11-29T08:00:00.123Z"
    assert format_timestamp(1_709_251_199_999) == "2024-02-29T23:59:59.999Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"


# --- rehearsed trouble ---


def test_fail_rate_1_answers_500_or_503_and_writes_nothing(rehearsal: SandboxServer) -> None:
    rehearsal.set_faults(fail_rate=1.0, seed=7)
    statuses = Counter(rehearsal.add_update(customer(new_id())).status for _ in range(30))

    assert set(statuses) == {500, 503}
    assert rehearsal.customers() == []
    assert rehearsal.stats()["upserts"] == {"created": 0, "updated": 0}


def test_beyond_the_rate_limit_answers_429_with_retry_after(rehearsal: SandboxServer) -> None:
    rehearsal.set_faults(rate_limit=2)
    responses = [rehearsal.add_update(customer(new_id())) for _ in range(3)]

    assert [r.status for r in responses[:2]] == [201, 201]  # the burst: one second's worth
    assert_error(responses[2], 429, "RATE_LIMITED")
    assert responses[2].headers["retry-after"] == "1"
    time.sleep(0.6)  # a token every 0.5 s
    assert rehearsal.add_update(customer(new_id())).status == 201


def test_token_bucket_allows_one_second_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=4, clock=lambda: now[0])

    assert [bucket.take() for _ in range(5)] == [0.0, 0.0, 0.0, 0.0, 0.25]
    now[0] = 0.5
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.25]


def test_latency_delays_each_add_update_and_requests_overlap(slow_sandbox: SandboxServer) -> None:
    slow_sandbox.reset_stats()
    started = time.monotonic()

    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: slow_sandbox.add_update(customer(new_id())).status, range(8))
        )

    elapsed = time.monotonic() - started
    assert statuses == [201] * 8
    assert elapsed >= 0.3  # each waited its latency
    assert slow_sandbox.stats()["max_in_flight"] == 8  # at once: they overlapped


def test_concurrent_upserts_of_one_new_id_create_it_once(slow_sandbox: SandboxServer) -> None:
    external_id = new_id()

    with ThreadPoolExecutor(6) as pool:
        statuses = list(
            pool.map(lambda _: slow_sandbox.add_update(customer(external_id)).status, range(6))
        )

    assert sorted(statuses) == [200] * 5 + [201]


def outcome(sandbox: SandboxServer, body: dict[str, Any], timeout_s: float = 10.0) -> int | str:
    """The status of one add-update, or "reset" / "timeout" when no answer came."""
    try:
        return sandbox.request(
            "POST", "/customers/add-update", json_body=body, timeout_s=timeout_s
        ).status
    except TimeoutError:
        return "timeout"
    except OSError as exc:  # urllib raises the reset itself or wraps it in URLError
        reason = getattr(exc, "reason", exc)
        assert isinstance(reason, ConnectionError | TimeoutError), exc
        return "timeout" if isinstance(reason, TimeoutError) else "reset"


def test_fail_first_answers_503_to_the_first_n_then_serves(rehearsal: SandboxServer) -> None:
    rehearsal.set_faults(fail_first=3)
    responses = [rehearsal.add_update(customer(f"F-{i}")) for i in range(5)]

    for response in responses[:3]:
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert [r.status for r in responses[3:]] == [201, 201]
    assert [c["externalId"] for c in rehearsal.customers()] == ["F-3", "F-4"]


def test_fail_first_does_not_count_requests_refused_for_credentials(
    rehearsal: SandboxServer,
) -> None:
    rehearsal.set_faults(fail_first=1)
    refused = rehearsal.request(
        "POST", "/customers/add-update", json_body=customer("F-1"), auth=False
    )
    assert refused.status == 401
    assert rehearsal.add_update(customer("F-1")).status == 503
    assert rehearsal.add_update(customer("F-1")).status == 201


def test_conflict_rate_1_answers_409_duplicate_and_writes_nothing(rehearsal: SandboxServer) -> None:
    rehearsal.set_faults(conflict_rate=1.0, seed=1)
    response = rehearsal.add_update(customer("K-1"))

    error = assert_error(response, 409, "DUPLICATE")
    assert error["message"] == "Duplicate externalId"
    assert rehearsal.customers() == []
    assert rehearsal.stats()["upserts"] == {"created": 0, "updated": 0}


def test_reset_rate_1_resets_every_connection_half_before_half_after_the_write(
    rehearsal: SandboxServer,
) -> None:
    rehearsal.set_faults(reset_rate=1.0, seed=5)
    ids = [f"X-{i}" for i in range(40)]

    outcomes = {outcome(rehearsal, customer(i)) for i in ids}

    assert outcomes == {"reset"}
    stats = rehearsal.stats()
    stored = {c["externalId"] for c in rehearsal.customers()}
    assert 0 < len(stored) < len(ids)  # both halves happen: 40 fair coins are not all equal
    assert stats["by_status"] == {"dropped": 40}
    assert stats["upserts"] == {"created": len(stored), "updated": 0}


def test_a_write_whose_answer_was_lost_is_found_by_the_retry(rehearsal: SandboxServer) -> None:
    rehearsal.set_faults(reset_rate=0.5, seed=5)
    answers: dict[str, list[int | str]] = {}
    for i in range(30):
        external_id = f"L-{i}"
        attempts = answers.setdefault(external_id, [])
        while not attempts or attempts[-1] == "reset":
            attempts.append(outcome(rehearsal, customer(external_id, lastName=f"n{i}")))

    stored = {c["externalId"]: c for c in rehearsal.customers()}
    assert sorted(stored) == sorted(answers)
    assert all(stored[f"L-{i}"]["lastName"] == f"n{i}" for i in range(30))
    # After a reset, the retry says 201 when the write had not happened, 200 when it had.
    after_reset = {a[-1] for a in answers.values() if len(a) > 1}
    assert after_reset == {200, 201}


def test_the_same_seed_gives_the_same_resets() -> None:
    def stored_after_resets() -> list[str]:
        with SandboxServer(reset_rate=0.5, seed=11) as sandbox:
            for i in range(20):
                outcome(sandbox, customer(f"S-{i}"))
            return sorted(c["externalId"] for c in sandbox.customers())

    assert stored_after_resets() == stored_after_resets()


def test_hang_holds_the_answer_after_the_write_so_an_impatient_client_times_out(
    rehearsal: SandboxServer,
) -> None:
    rehearsal.set_faults(hang_rate=1.0, hang_ms=600, seed=1)
    assert outcome(rehearsal, customer("H-1"), timeout_s=0.3) == "timeout"

    assert rehearsal.get("H-1") is not None  # the write landed; only the answer was late
    deadline = time.monotonic() + 10
    while rehearsal.stats()["by_status"].get("dropped") != 1:  # the answer found no client
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    assert outcome(rehearsal, customer("H-2"), timeout_s=10) == 201  # a patient client waits
    assert time.monotonic() - started >= 0.6


def test_count_ids_counts_add_update_requests_per_external_id() -> None:
    with SandboxServer(count_ids=True, fail_first=1) as sandbox:
        for external_id in ("A-1", "A-1", "A-2"):
            sandbox.add_update(customer(external_id))
        sandbox.request("POST", "/customers/add-update", body=b"{")

        assert sandbox.stats()["by_external_id"] == {"A-1": 2, "A-2": 1}
        sandbox.reset_stats()
        assert sandbox.stats()["by_external_id"] == {}


def test_ids_are_not_counted_unless_asked(sandbox: SandboxServer) -> None:
    sandbox.add_update(customer(new_id()))

    assert "by_external_id" not in sandbox.stats()


def test_each_random_switch_draws_from_its_own_stream() -> None:
    def failures(**extra: Any) -> list[int | None]:
        faults = Faults(FaultSettings(fail_rate=0.5, seed=3, **extra))
        draws = []
        for _ in range(50):
            draws.append(faults.failure_status())
            faults.conflict()
            faults.drop()
            faults.hang()
            faults.drip()
            faults.non_json_2xx()
            faults.html_4xx()
            faults.shared_quota()
        return draws

    assert failures() == failures(
        conflict_rate=0.5, reset_rate=0.5, hang_rate=0.5, drip_ms=1, drip_rate=0.5,
        non_json_2xx=0.5, html_4xx=0.5, rate_limited_share=0.5,
    )  # fmt: skip


def test_reset_draws_fall_in_both_halves() -> None:
    faults = Faults(FaultSettings(reset_rate=1.0, seed=2))

    drops = Counter(faults.drop() for _ in range(200))

    assert set(drops) == {Drop.BEFORE_WRITE, Drop.AFTER_WRITE}
    assert 60 < drops[Drop.BEFORE_WRITE] < 140


def test_switched_off_faults_never_fire() -> None:
    faults = Faults(FaultSettings(seed=1))

    for _ in range(100):
        assert faults.failure_status() is None
        assert not faults.conflict()
        assert faults.drop() is None
        assert not faults.hang()
        assert not faults.drip()
        assert not faults.non_json_2xx()
        assert not faults.html_4xx()
        assert not faults.shared_quota()
    assert faults.retry_after_s() is None
    assert faults.redirect is None


def test_the_switched_on_faults_are_described_at_start() -> None:
    settings = FaultSettings(fail_first=5, reset_rate=0.2, hang_rate=0.1, hang_ms=2000, seed=4)

    assert settings.describe() == (
        "503 for the first 5 requests, reset rate 0.2, hang rate 0.1 (2000 ms), seed 4"
    )
    misbehaving = FaultSettings(
        redirect="https://x.test/", html_4xx=0.1, rate_limited_share=0.5, retry_after="3600",
        drip_ms=50, drip_rate=0.2, seed=1,
    )  # fmt: skip
    assert misbehaving.describe() == (
        "redirect 301 to https://x.test/, HTML 400 rate 0.1, 429 share 0.5, Retry-After 3600, "
        "drip a byte every 50 ms (rate 0.2), seed 1"
    )
    assert FaultSettings().describe() == ""


def test_options_give_the_fault_settings() -> None:
    args = parse(
        "--fail-first", "2", "--conflict-rate", "0.1", "--reset-rate", "0.2",
        "--hang-rate", "0.3", "--hang-ms", "500", "--seed", "9", "--count-ids",
    )  # fmt: skip

    assert fault_settings(args) == FaultSettings(
        fail_first=2, conflict_rate=0.1, reset_rate=0.2, hang_rate=0.3, hang_ms=500, seed=9
    )
    assert args.count_ids
    assert fault_settings(parse()) == FaultSettings()
    misbehaving = parse(
        "--drip-ms", "20", "--drip-rate", "0.5", "--non-json-2xx", "0.1", "--html-4xx", "0.2",
        "--redirect", "https://x.test/a?b=c", "--redirect-status", "307",
        "--rate-limited-share", "0.5", "--retry-after", "date+60",
    )  # fmt: skip
    assert fault_settings(misbehaving) == FaultSettings(
        drip_ms=20, drip_rate=0.5, non_json_2xx=0.1, html_4xx=0.2, redirect="https://x.test/a?b=c",
        redirect_status=307, rate_limited_share=0.5, retry_after="date+60",
    )  # fmt: skip
    assert option_without_effect(misbehaving) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--retry-after", "60"], "add --rate-limit or --rate-limited-share"),
        (["--drip-rate", "0.5"], "add --drip-ms"),
        (["--redirect-status", "307"], "add --redirect"),
    ],
)
def test_an_option_without_the_one_it_qualifies_is_refused(argv: list[str], message: str) -> None:
    assert message in (option_without_effect(parse(*argv)) or "")


def test_the_sandbox_exits_2_for_an_option_that_would_do_nothing() -> None:
    sandbox = SandboxServer(retry_after=3600)

    with pytest.raises(SandboxError, match="--retry-after applies to 429s"):
        sandbox.start()
    assert sandbox.returncode == 2


# --- rehearsed trouble: an API that misbehaves, or something in front of it ---


def test_redirect_answers_every_add_update_with_the_location_and_writes_nothing(
    rehearsal: SandboxServer,
) -> None:
    location = "https://api.example.com/v2/customers/add-update"
    rehearsal.set_faults(redirect=location, redirect_status=307)
    answers = [rehearsal.add_update(customer(new_id())) for _ in range(3)]
    wrong_key = rehearsal.request("POST", "/customers/add-update", body=b"{}", auth=False)

    assert {a.status for a in [*answers, wrong_key]} == {307}
    assert {a.headers["location"] for a in answers} == {location}
    assert rehearsal.customers() == []  # reads are not redirected
    assert rehearsal.stats()["faults"] == {"redirect": 4}


def test_a_redirect_is_a_301_unless_told(rehearsal: SandboxServer) -> None:
    rehearsal.set_faults(redirect="http://x.test/")

    answer = rehearsal.add_update(customer(new_id()))

    assert (answer.status, answer.headers["location"]) == (301, "http://x.test/")


def test_html_4xx_answers_400_with_an_html_page_not_the_envelope_and_writes_nothing(
    rehearsal: SandboxServer,
) -> None:
    rehearsal.set_faults(html_4xx=1.0)
    external_id = new_id()

    answer = rehearsal.add_update(customer(external_id))

    assert answer.status == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert b"<h1>400 Bad Request</h1>" in answer.body
    rehearsal.set_faults()
    assert rehearsal.get(external_id) is None


def test_non_json_2xx_answers_200_with_an_html_page_and_writes_nothing(
    rehearsal: SandboxServer,
) -> None:
    rehearsal.set_faults(non_json_2xx=0.5, seed=2)
    ids = [new_id() for _ in range(20)]

    answers = [rehearsal.add_update(customer(external_id)) for external_id in ids]

    pages = [i for i, a in enumerate(answers) if a.headers["content-type"].startswith("text/")]
    assert 0 < len(pages) < 20
    assert {answers[i].status for i in pages} == {200}
    assert all(b"Welcome to nginx" in answers[i].body for i in pages)
    written = [i for i, external_id in enumerate(ids) if rehearsal.get(external_id)]
    assert written == [i for i in range(20) if i not in pages]
    assert rehearsal.stats()["faults"] == {"non_json_2xx": len(pages)}


def test_a_rate_limited_share_answers_429_retry_after_0_however_slow_the_client(
    rehearsal: SandboxServer,
) -> None:
    rehearsal.set_faults(rate_limited_share=0.5, seed=3)
    answers = []
    for _ in range(40):
        answers.append(rehearsal.add_update(customer(new_id())))
        time.sleep(0.005)  # far below any limit: a bucket would admit every one

    limited = [a for a in answers if a.status == 429]
    assert 8 < len(limited) < 32
    assert {a.headers["retry-after"] for a in limited} == {"0"}
    assert_error(limited[0], 429, "RATE_LIMITED")
    assert rehearsal.stats()["upserts"]["created"] == 40 - len(limited)


@pytest.mark.parametrize("value", ["99999999999999999999", "Wed, 21 Oct 2043 07:28:00 GMT"])
def test_retry_after_is_sent_as_given_by_the_rate_limit_and_the_share(
    rehearsal: SandboxServer, value: str
) -> None:
    rehearsal.set_faults(rate_limit=1, rate_limited_share=0.5, retry_after=value, seed=1)

    answers = [rehearsal.add_update(customer(new_id())) for _ in range(6)]

    faults = rehearsal.stats()["faults"]
    assert faults["rate_limit"] > 0 and faults["rate_limited_share"] > 0
    assert {a.headers.get("retry-after") for a in answers if a.status == 429} == {value}


def test_retry_after_date_plus_n_is_an_http_date_n_seconds_after_the_answer(
    rehearsal: SandboxServer,
) -> None:
    rehearsal.set_faults(rate_limited_share=1.0, retry_after="date+3600")

    answer = rehearsal.add_update(customer(new_id()))

    assert answer.status == 429
    when = parsedate_to_datetime(answer.headers["retry-after"])
    assert abs((when - datetime.now(UTC)).total_seconds() - 3600) < 60


def raw_post(sandbox: SandboxServer, body: bytes) -> socket.socket:
    """An add-update request on a socket of its own, for reading its answer as it arrives."""
    head = (
        "POST /customers/add-update HTTP/1.1\r\nHost: sandbox\r\n"
        f"x-api-key: {sandbox.api_key}\r\nx-merchant-id: {sandbox.merchant_id}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", sandbox.port), timeout=10)
    sock.sendall(head.encode() + body)
    return sock


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The status line and headers, and what came of the body with them."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def test_drip_sends_the_headers_at_once_then_the_body_a_byte_every_n_ms(
    rehearsal: SandboxServer,
) -> None:
    rehearsal.set_faults(drip_ms=5)
    external_id = new_id()

    with raw_post(rehearsal, json.dumps(customer(external_id)).encode()) as sock:
        head, body = read_head(sock)
        headers_at = time.monotonic()
        length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])  # type: ignore[index]
        reads = 1
        while len(body) < length:
            body += sock.recv(4096)
            reads += 1
        elapsed = time.monotonic() - headers_at

    assert head.startswith(b"HTTP/1.1 201")
    assert len(body) == length > 100
    assert reads > length // 4  # it came in pieces, not at once
    assert elapsed >= (length - 2) * 0.005
    assert json.loads(body)["externalId"] == external_id
    assert rehearsal.stats()["faults"] == {"drip": 1}


def test_a_client_that_gives_up_on_a_dripping_answer_was_written_and_is_counted_dropped(
    rehearsal: SandboxServer,
) -> None:
    rehearsal.set_faults(drip_ms=50)
    external_id = new_id()

    with raw_post(rehearsal, json.dumps(customer(external_id)).encode()) as sock:
        head, _ = read_head(sock)

    assert head.startswith(b"HTTP/1.1 201")
    assert rehearsal.get(external_id) is not None  # the write came before the answer
    deadline = time.monotonic() + 10
    while rehearsal.stats()["by_status"].get("dropped") != 1:
        assert time.monotonic() < deadline, rehearsal.stats()
        time.sleep(0.05)


def test_drip_rate_drips_a_share_of_answers_from_a_stream_of_its_own() -> None:
    faults = Faults(FaultSettings(drip_ms=10, drip_rate=0.3, seed=5))

    drips = sum(faults.drip() for _ in range(1000))

    assert 240 < drips < 360


def test_revoked_key_answers_401_to_every_further_add_update() -> None:
    with SandboxServer() as sandbox:
        assert sandbox.add_update(customer("R-1")).status == 201

        sandbox.revoke_key()

        assert_error(sandbox.add_update(customer("R-2")), 401, "UNAUTHORIZED")
        assert_error(sandbox.add_update(customer("R-1")), 401, "UNAUTHORIZED")
        assert [c["externalId"] for c in sandbox.customers()] == ["R-1"]


def test_reset_gives_back_a_new_servers_state_but_leaves_the_faults_on() -> None:
    """What lets one server serve many tests (conftest's ``sandbox``) as if each had its own."""
    with SandboxServer(fail_first=1, count_ids=True) as sandbox:
        assert sandbox.add_update(customer("Z-1")).status == 503
        assert sandbox.add_update(customer("Z-1")).status == 201
        sandbox.revoke_key()
        assert sandbox.add_update(customer("Z-2")).status == 401

        sandbox.reset()

        assert sandbox.stats() == {
            "requests_total": 0,
            "by_status": {},
            "by_path": {},
            "upserts": {"created": 0, "updated": 0},
            "in_flight": 0,
            "max_in_flight": 0,
            "faults": {},
            "by_external_id": {},
        }
        assert sandbox.customers() == []
        # the key is valid again and Z-1 is new again; fail_first was used up, not rewound
        assert sandbox.add_update(customer("Z-1")).status == 201
        assert [c["externalId"] for c in sandbox.customers()] == ["Z-1"]


def test_faults_set_while_running_apply_at_once_and_reset_puts_back_the_started_ones() -> None:
    with SandboxServer(fail_first=1) as sandbox:
        assert sandbox.set_faults(html_4xx=1.0, seed=3) == "HTML 400 rate 1, seed 3"
        assert sandbox.add_update(customer("F-1")).body.startswith(b"<html>")
        sandbox.revoke_key()
        assert sandbox.set_faults() == ""

        assert_error(sandbox.add_update(customer("F-1")), 401, "UNAUTHORIZED")  # still revoked
        sandbox.reset()
        # the started switches, their counters carrying on: fail_first was never used up
        assert sandbox.add_update(customer("F-1")).status == 503
        assert sandbox.add_update(customer("F-1")).status == 201
        assert sandbox.stats()["faults"] == {"fail_first": 1}


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"html_4xx": 2}, "argument --html-4xx: must be between 0 and 1"),
        ({"retry_after": 60}, "--retry-after applies to 429s"),
        ({"seed": "x"}, "argument --seed: invalid int value"),
    ],
)
def test_faults_set_while_running_are_checked_as_on_the_command_line(
    sandbox: SandboxServer, switches: dict[str, Any], message: str
) -> None:
    with pytest.raises(SandboxError, match="VALIDATION_ERROR") as refused:
        sandbox.set_faults(**switches)

    assert message in str(refused.value)
    assert sandbox.add_update(customer(new_id())).status == 201  # nothing changed


def test_a_body_that_is_not_options_is_refused(sandbox: SandboxServer) -> None:
    for body in (b"{", b'{"args": "--html-4xx 1"}', b'{"args": [1]}', b"[]"):
        answer = sandbox.request("POST", "/_sandbox/faults", body=body, auth=False)
        assert_error(answer, 400, "VALIDATION_ERROR")
    with pytest.raises(TypeError, match="not a fault switch: port"):
        sandbox.set_faults(port=1)


def test_clearing_the_store_deletes_every_merchants_customers() -> None:
    store = CustomerStore()
    store.upsert("merchant-a", customer("C-1"))
    store.upsert("merchant-b", customer("C-1"))

    store.clear()

    assert store.page("merchant-a", 10, 0) == ([], 0)
    assert store.page("merchant-b", 10, 0) == ([], 0)
    assert store.upsert("merchant-a", customer("C-1")).created


def test_stats_count_requests_by_status_and_path_and_reset(sandbox: SandboxServer) -> None:
    external_id = new_id()
    sandbox.reset_stats()
    sandbox.add_update(customer(external_id))
    sandbox.add_update(customer(external_id))
    sandbox.add_update({"externalId": new_id()})
    sandbox.request("POST", "/customers/add-update", json_body=customer(new_id()), auth=False)
    sandbox.get(external_id)

    stats = sandbox.stats()

    assert stats["requests_total"] == 5
    assert stats["by_status"] == {"201": 1, "200": 2, "400": 1, "401": 1}
    assert stats["by_path"] == {"/customers/add-update": 4, "/customers/{externalId}": 1}
    assert stats["upserts"] == {"created": 1, "updated": 1}
    assert stats["max_in_flight"] == 1
    sandbox.reset_stats()
    assert sandbox.stats()["requests_total"] == 0


# --- process behaviour ---


def test_sigterm_and_sigint_exit_0_and_a_db_file_keeps_customers(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    with SandboxServer(db=db) as first:
        created = first.add_update(customer("D-1", email="ada@example.com")).json()
        assert first.stop(signal.SIGTERM) == 0

    with SandboxServer(db=db) as second:
        kept = second.get("D-1")
        updated = second.add_update(customer("D-1", firstName="Augusta"))
        assert second.stop(signal.SIGINT) == 0

    assert kept == created
    assert updated.status == 200
    assert updated.json()["createdAt"] == created["createdAt"]
    assert updated.json()["email"] == "ada@example.com"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_a_non_loopback_host_is_refused_with_exit_2() -> None:
    sandbox = SandboxServer(host="0.0.0.0")

    with pytest.raises(SandboxError, match="pass --allow-remote"):
        sandbox.start()
    assert sandbox.returncode == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--fail-rate", "1.5"],
        ["--conflict-rate", "-0.1"],
        ["--reset-rate", "2"],
        ["--hang-rate", "1.01"],
        ["--hang-ms", "-1"],
        ["--fail-first", "-1"],
        ["--fail-first", "1.5"],
        ["--latency-ms", "-1"],
        ["--rate-limit", "0"],
        ["--drip-ms", "-5"],
        ["--drip-rate", "2"],
        ["--non-json-2xx", "1.5"],
        ["--html-4xx", "-1"],
        ["--rate-limited-share", "1.1"],
        ["--redirect", ""],
        ["--redirect", "https://x.test/\u00e9"],
        ["--redirect-status", "200"],
        ["--retry-after", ""],
        ["--retry-after", "date+soon"],
        ["--retry-after", "12\n34"],
        ["--port", "x"],
        ["--port", "70000"],
        ["--api-key", ""],
    ],
)
def test_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)

    assert exited.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_the_key_from_a_flag_never_appears_in_the_output(sandbox: SandboxServer) -> None:
    wrong_key = {"x-api-key": sandbox.api_key + "-wrong", "x-merchant-id": sandbox.merchant_id}
    sandbox.request("POST", "/customers/add-update", body=b"{", headers=wrong_key, auth=False)
    sandbox.request("POST", "/customers/add-update", body=b"{")

    assert "'test-merchant' (flag)" in sandbox.output
    assert "API key from flag" in sandbox.output
    assert sandbox.api_key not in sandbox.output


@pytest.mark.parametrize(
    ("env_key", "key", "source"),
    [
        ("env-secret-4711", "env-secret-4711", "environment CUSTOMERS_API_KEY"),
        (None, "demo-key", "demo default"),
    ],
    ids=["environment", "demo default"],
)
def test_a_key_from_elsewhere_is_named_by_source_only(
    env_key: str | None, key: str, source: str
) -> None:
    sandbox = SandboxServer(api_key=None, env={"CUSTOMERS_API_KEY": env_key})
    with sandbox:
        headers = {"x-api-key": key, "x-merchant-id": "test-merchant"}
        assert sandbox.request("GET", "/customers", headers=headers, auth=False).status == 200

    assert f"API key from {source} (not shown)" in sandbox.output
    assert key not in sandbox.output


def test_max_in_flight_counts_the_requests_a_client_has_in_flight_without_latency(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A handler that never waits used to count them one at a time: 1 for a job with 32."""
    from customer_import.config import load_job
    from customer_import.run.options import RunOptions
    from customer_import.run.pipeline import run_job
    from tests.conftest import write_csv, write_job

    lines = [f"F-{i},First,Last,,,," for i in range(2_000)]
    job = write_job(tmp_path, write_csv(tmp_path / "in.csv", *lines), base_url=sandbox.base_url)

    environ = {"CUSTOMERS_API_KEY": sandbox.api_key, "CUSTOMERS_MERCHANT_ID": sandbox.merchant_id}
    report = run_job(load_job(job), RunOptions(environ=environ, concurrency=32))

    assert report.summary.max_in_flight == 32

    assert sandbox.stats()["max_in_flight"] > 1
