"""What the sandbox saw, served at ``GET /_sandbox/stats`` for tests and benchmarks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

#: ``by_status`` key of requests whose answer never reached the client (see ``Stats``).
DROPPED: Final = "dropped"


@dataclass
class Stats:
    """What the sandbox saw, for tests that count the job's requests and check its concurrency.

    Requests to ``/_sandbox/`` are not counted, so reading the stats does not change them.
    ``by_status`` counts a request whose answer never reached the client (its connection was
    dropped by a fault, or the client had gone when the answer was ready) as ``"dropped"``.
    ``by_external_id`` (only with ``count_ids``) counts add-update requests per body externalId.
    ``faults`` counts the fault switches that fired, by name (``html_4xx``, ``drip``, ...).
    """

    count_ids: bool = False
    requests_total: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    by_external_id: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    created: int = 0
    updated: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def as_json(self) -> dict[str, Any]:
        """The ``GET /_sandbox/stats`` body."""
        body = {
            "requests_total": self.requests_total,
            "by_status": dict(self.by_status),
            "by_path": dict(self.by_path),
            "upserts": {"created": self.created, "updated": self.updated},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "faults": dict(self.faults),
        }
        if self.count_ids:
            body["by_external_id"] = dict(self.by_external_id)
        return body

    def count_id(self, body: object) -> None:
        """Count one add-update request for its body's externalId (when counting is on)."""
        if self.count_ids and isinstance(body, dict) and isinstance(body.get("externalId"), str):
            self.by_external_id[body["externalId"]] += 1

    def reset(self) -> None:
        """Zero the counts; requests still in flight stay counted as in flight."""
        self.requests_total = self.created = self.updated = 0
        self.by_status.clear()
        self.by_path.clear()
        self.by_external_id.clear()
        self.faults.clear()
        self.max_in_flight = self.in_flight
