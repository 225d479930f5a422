"""Run the sandbox in a subprocess for tests and benchmarks.

    with SandboxServer(latency_ms=20) as sandbox:
        run_the_job(base_url=sandbox.base_url, api_key=sandbox.api_key, ...)
        assert sandbox.stats()["by_path"]["/customers/add-update"] == 3

A subprocess, not a thread: the server gets its own interpreter and event loop, so it is measured
and stopped (SIGTERM) exactly as users run it, and it never shares a loop with the code under test.
This module's own HTTP calls use only the stdlib (urllib) for the same reason.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

_LISTENING: Final = re.compile(r"sandbox listening on (http://\S+)")
# the child must import this very package, even when it is not installed (a plain checkout)
_SOURCE_ROOT: Final = str(Path(__file__).resolve().parents[2])


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to return (``--redirect``), not one to follow."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# never send loopback traffic through an http_proxy from the environment
_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
_PAGE_SIZE: Final = 100
#: The keywords of the fault switches (each the option's name: ``html_4xx`` is ``--html-4xx``).
FAULT_KEYWORDS: Final = frozenset(
    {
        "latency_ms", "fail_rate", "rate_limit", "seed", "fail_first", "conflict_rate",
        "reset_rate", "hang_rate", "hang_ms", "drip_ms", "drip_rate", "non_json_2xx",
        "html_4xx", "redirect", "redirect_status", "rate_limited_share", "retry_after",
    }
)  # fmt: skip


@dataclass(frozen=True)
class SandboxResponse:
    """One answer of the sandbox, whatever its status."""

    status: int
    headers: Mapping[str, str]
    """Header names in lower case."""
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class SandboxError(RuntimeError):
    """The sandbox did not start, answered unexpectedly, or did not stop."""


class SandboxServer:
    """A sandbox process on a free loopback port; a context manager that stops it on exit.

    Every keyword mirrors a CLI option; None leaves the option out. ``api_key`` and ``merchant_id``
    default to explicit test values so a developer's environment cannot change what tests see.
    ``port`` 0 picks a free port; a fixed one lets a second server take over a stopped one's URL
    (with the same ``db`` file it also keeps its customers), e.g. to resume a run against it.
    """

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        merchant_id: str | None = "test-merchant",
        db: str | os.PathLike[str] | None = None,
        latency_ms: float | None = None,
        fail_rate: float | None = None,
        rate_limit: float | None = None,
        seed: int | None = None,
        fail_first: int | None = None,
        conflict_rate: float | None = None,
        reset_rate: float | None = None,
        hang_rate: float | None = None,
        hang_ms: float | None = None,
        drip_ms: float | None = None,
        drip_rate: float | None = None,
        non_json_2xx: float | None = None,
        html_4xx: float | None = None,
        redirect: str | None = None,
        redirect_status: int | None = None,
        rate_limited_share: float | None = None,
        retry_after: str | int | None = None,
        count_ids: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str | None] | None = None,
        start_timeout_s: float = 15.0,
    ) -> None:
        options = {
            "--api-key": api_key,
            "--merchant-id": merchant_id,
            "--db": None if db is None else os.fspath(db),
            "--latency-ms": latency_ms,
            "--fail-rate": fail_rate,
            "--rate-limit": rate_limit,
            "--seed": seed,
            "--fail-first": fail_first,
            "--conflict-rate": conflict_rate,
            "--reset-rate": reset_rate,
            "--hang-rate": hang_rate,
            "--hang-ms": hang_ms,
            "--drip-ms": drip_ms,
            "--drip-rate": drip_rate,
            "--non-json-2xx": non_json_2xx,
            "--html-4xx": html_4xx,
            "--redirect": redirect,
            "--redirect-status": redirect_status,
            "--rate-limited-share": rate_limited_share,
            "--retry-after": retry_after,
        }
        self.args = ["--host", host, "--port", str(port)]
        for flag, value in options.items():
            if value is not None:
                self.args += [flag, str(value)]
        if count_ids:
            self.args.append("--count-ids")
        self.args += extra_args
        self._api_key = api_key
        self._merchant_id = merchant_id
        self._env = _child_env(env or {})
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lines: list[str] = []
        self._url: str | None = None
        self._listening = threading.Event()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start the process, wait for its "listening on" line and for ``GET /`` to answer.

        The stats are reset afterwards, so they count only what the caller sends.
        """
        command = [sys.executable, "-m", "customer_import.sandbox", *self.args]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=self._env,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        try:
            self._wait_until_listening()
            self._wait_until_ready()
        except SandboxError as exc:
            self._kill()
            raise SandboxError(f"{exc}:\n{self.output}") from None
        self.reset_stats()
        return self

    def _read_output(self) -> None:
        """Drain the child's output (so it never blocks on a full pipe) and spot the URL."""
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.append(line)
            match = _LISTENING.search(line)
            if match and self._url is None:
                self._url = match.group(1)
                self._listening.set()
        self._listening.set()  # the process ended: wake a waiting start()

    def _wait_until_listening(self) -> None:
        if not self._listening.wait(self._start_timeout_s) or self._url is None:
            raise SandboxError("the sandbox did not start")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            try:
                if self.request("GET", "/", auth=False).status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SandboxError("the sandbox never answered GET /")
            time.sleep(0.02)

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        """Signal the process (SIGTERM) and wait for it; returns its exit code. Idempotent."""
        process = self._process
        if process is None:
            raise SandboxError("the sandbox was never started")
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._kill()
                raise SandboxError(f"the sandbox ignored signal {signum}:\n{self.output}") from None
        self._close_output()
        return process.returncode

    def _kill(self) -> None:
        assert self._process is not None
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close_output()

    def _close_output(self) -> None:
        """Let the reader drain what is left, then close the pipe (else: ResourceWarning)."""
        assert self._process is not None and self._process.stdout is not None
        if self._reader is not None:
            self._reader.join(5.0)
        self._process.stdout.close()

    @property
    def base_url(self) -> str:
        """E.g. ``http://127.0.0.1:41234``, as the server printed it."""
        if self._url is None:
            raise SandboxError("the sandbox is not started")
        return self._url

    @property
    def port(self) -> int:
        """The port the server listens on."""
        port = urllib.parse.urlsplit(self.base_url).port
        assert port is not None  # the server always prints one
        return port

    @property
    def api_key(self) -> str:
        """The key the sandbox expects (when it was passed as a flag)."""
        if self._api_key is None:
            raise SandboxError("no api_key was given: the sandbox took it from elsewhere")
        return self._api_key

    @property
    def merchant_id(self) -> str:
        """The merchant id the sandbox expects (when it was passed as a flag)."""
        if self._merchant_id is None:
            raise SandboxError("no merchant_id was given: the sandbox took it from elsewhere")
        return self._merchant_id

    @property
    def headers(self) -> dict[str, str]:
        """The two authentication headers."""
        return {"x-api-key": self.api_key, "x-merchant-id": self.merchant_id}

    @property
    def output(self) -> str:
        """Everything the process printed so far, stdout and stderr interleaved."""
        return "".join(self._lines)

    @property
    def returncode(self) -> int | None:
        """The exit code once the process ended, else None."""
        return None if self._process is None else self._process.poll()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        timeout_s: float = 10.0,
    ) -> SandboxResponse:
        """One HTTP request; any status is returned, not raised. ``auth`` adds both headers."""
        all_headers = {**(self.headers if auth else {}), **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers.setdefault("content-type", "application/json")
        request = urllib.request.Request(
            self.base_url + path, data=body, headers=all_headers, method=method
        )
        try:
            with _OPENER.open(request, timeout=timeout_s) as answer:
                return _response(answer.status, answer.headers.items(), answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return _response(error.code, error.headers.items(), error.read())

    def add_update(self, customer: Mapping[str, object]) -> SandboxResponse:
        """``POST /customers/add-update`` with the authentication headers."""
        return self.request("POST", "/customers/add-update", json_body=customer)

    def stats(self) -> dict[str, Any]:
        """``GET /_sandbox/stats``: requests_total, by_status, by_path, upserts, max_in_flight,
        and by_external_id when started with ``count_ids``."""
        stats: dict[str, Any] = self._expect(200, "GET", "/_sandbox/stats")
        return stats

    def reset_stats(self) -> None:
        """Zero the stats."""
        self._expect(200, "POST", "/_sandbox/reset-stats")

    def revoke_key(self) -> None:
        """Make every further add-update request answer 401."""
        self._expect(200, "POST", "/_sandbox/revoke-key")

    def reset(self) -> None:
        """Back to the state a fresh server starts in: no customers (of any merchant), zero
        stats, a revoked key valid again, the fault switches it was started with (any
        ``set_faults`` dropped); for one server shared by many tests."""
        self._expect(200, "POST", "/_sandbox/reset")

    def set_faults(self, **switches: float | str | None) -> str:
        """Other fault switches from now on, by the keywords of the constructor
        (``set_faults(html_4xx=1.0)``; none: no faults); returns them in words. Draws and
        counters start afresh; ``reset()`` puts back the ones the server started with. Cheaper
        than a server of its own (a process), and it can change the API's ways mid-run."""
        unknown = set(switches) - FAULT_KEYWORDS
        if unknown:
            raise TypeError(f"not a fault switch: {', '.join(sorted(unknown))}")
        args = []
        for name, value in switches.items():
            if value is not None:
                args += ["--" + name.replace("_", "-"), str(value)]
        body = json.dumps({"args": args}).encode()
        answer = self.request("POST", "/_sandbox/faults", body=body, auth=False)
        described: str = _checked(answer, 200)["faults"]
        return described

    def get(self, external_id: str) -> dict[str, Any] | None:
        """The stored customer, or None when there is none."""
        response = self.request("GET", "/customers/" + urllib.parse.quote(external_id, safe=""))
        if response.status == 404:
            return None
        customer: dict[str, Any] = _checked(response, 200)
        return customer

    def customers(self) -> list[dict[str, Any]]:
        """Every stored customer of the merchant, in creation order (pages through the list)."""
        found: list[dict[str, Any]] = []
        while True:
            page = self._expect(200, "GET", f"/customers?limit={_PAGE_SIZE}&offset={len(found)}")
            found += page["data"]
            if not page["data"] or len(found) >= page["total"]:
                return found

    def _expect(self, status: int, method: str, path: str) -> Any:
        auth = not path.startswith("/_sandbox/")
        return _checked(self.request(method, path, auth=auth), status)


def _response(status: int, headers: Sequence[tuple[str, str]], body: bytes) -> SandboxResponse:
    return SandboxResponse(status, {name.lower(): value for name, value in headers}, body)


def _checked(response: SandboxResponse, status: int) -> Any:
    if response.status != status:
        raise SandboxError(f"expected {status}, got {response.status}: {response.body!r}")
    return response.json()


def _child_env(overrides: Mapping[str, str | None]) -> dict[str, str]:
    """This process's environment with ``overrides`` (None removes) and the package importable."""
    env = dict(os.environ)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), _SOURCE_ROOT]))
    return env
