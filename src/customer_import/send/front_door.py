"""Who is answering: the API, or something in front of it (a proxy, a gateway, a login page)
that rejects every request with a page of its own."""

from __future__ import annotations

from collections import Counter
from typing import Final

import httpx

from customer_import.errors import NotTheApi
from customer_import.send.answers import Disposition, is_error_envelope

FIRST_ANSWERS: Final = 20


class FrontDoor:
    """Watches a run's first answers: when the first ``FIRST_ANSWERS`` are all 4xx rejects
    whose bodies are not the API's error envelope, the run stops (every record would be
    rejected for a reason that is not its own). Any other answer ends the watch."""

    def __init__(self, first: int = FIRST_ANSWERS) -> None:
        self._left = first
        self._kinds: Counter[str] = Counter()
        self.watching = first > 0
        """False once the watch is over: the sender then no longer calls ``check``."""

    def check(self, response: httpx.Response, disposition: Disposition) -> None:
        if self._left <= 0 or disposition is Disposition.SLOW_DOWN:
            return
        if disposition is not Disposition.REJECT or is_error_envelope(response):
            self._left = 0  # the API itself answers
            self.watching = False
            return
        self._kinds[f"HTTP {response.status_code} {response.headers.get('content-type', '')}"] += 1
        self._left -= 1
        if self._left == 0:
            seen = ", ".join(f"{kind.strip()} ({n}x)" for kind, n in self._kinds.most_common(3))
            raise NotTheApi(
                f"the first {sum(self._kinds.values())} answers were all rejects without the "
                f"API's error body ({seen}): something in front of the API is answering (a "
                "proxy, a gateway); check api.base_url, then run again with --resume"
            )
