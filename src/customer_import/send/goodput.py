"""Whether slowing down lowers the share of 429s.

A limiter of the job's own (a token bucket per key) answers 429 more as the job sends faster,
and slowing down is the cure. A quota shared with other clients, or a limiter in trouble,
answers 429 to a share of requests whatever the job's pace: there, slowing down only loses
successes, and a pacer that cuts on every spell of 429s falls to a request a second. So the
answers are tallied in windows of a second (and at least ``MIN_ANSWERS`` answers), with the
pace they were sent at. When a window sent clearly slower than an earlier one has about the
same share of 429s, slowing down did not help: the pacer holds the pace that got the most
successes a second, and cuts again only if the share of 429s rises above what it was then.
"""

from __future__ import annotations

from collections import deque
from typing import Final, NamedTuple

WINDOW_S: Final = 1.0
MIN_ANSWERS: Final = 20  # a window with fewer answers says too little: it goes on
MIN_SHARE: Final = 0.1  # below this, 429s are a limit touched now and then
MAX_SHARE: Final = 0.9  # above this, nothing gets through: a quota window, not a share
_SLOWER: Final = 1 / 1.2  # a window this much slower than an earlier one can judge it
_NOT_LOWER: Final = 0.8  # a share of 429s at least this much of the earlier one's: no better
_RISEN: Final = 0.15  # a share this much above the held one's: the job's own pace again
_HISTORY: Final = 8


class Window(NamedTuple):
    requests_per_s: float
    share_limited: float
    successes_per_s: float


class GoodputJudge:
    """Tallies answers into windows; judges whether slowing down helps."""

    def __init__(self) -> None:
        self._began: float | None = None
        self._ok = self._limited = 0
        self._windows: deque[Window] = deque(maxlen=_HISTORY)
        self.held_share: float | None = None
        """The share of 429s when the pace was last held (None: slowing down helps)."""

    def answered(self, now: float, limited: bool) -> Window | None:
        """Tally one answer; the window it closes, if it closes one."""
        if self._began is None:
            self._began = now
        if limited:
            self._limited += 1
        else:
            self._ok += 1
        answers = self._ok + self._limited
        if now - self._began < WINDOW_S or answers < MIN_ANSWERS:
            return None
        span, ok = now - self._began, self._ok
        self._began, self._ok, self._limited = now, 0, 0
        window = Window(answers / span, (answers - ok) / answers, ok / span)
        self._windows.append(window)
        return window

    def pace_to_hold(self, window: Window) -> float | None:
        """The pace with the most successes, when this window shows that slowing down did not
        lower the share of 429s; None otherwise."""
        if not MIN_SHARE <= window.share_limited <= MAX_SHARE:
            return None
        if not any(
            window.requests_per_s <= _SLOWER * earlier.requests_per_s
            and window.share_limited >= _NOT_LOWER * earlier.share_limited
            for earlier in self._windows
        ):
            return None
        self.held_share = window.share_limited
        best = max(self._windows, key=lambda w: w.successes_per_s)
        self._windows.clear()
        return best.requests_per_s

    def while_holding(self, window: Window) -> str:
        """ "over" (few 429s: the quota has room again), "risen" (more 429s than when held:
        the job's own pace), or "hold"."""
        assert self.held_share is not None
        if window.share_limited < MIN_SHARE:
            self.held_share = None
            return "over"
        if window.share_limited > min(self.held_share + _RISEN, MAX_SHARE):
            return "risen"
        return "hold"
