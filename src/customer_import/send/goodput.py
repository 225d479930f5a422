"""Whether slowing down lowers the share of 429s.

A limiter of the job's own (a token bucket per key) answers 429 more as the job sends faster,
and slowing down is the cure. A quota shared with other clients, or a limiter in trouble,
answers 429 to a share of requests whatever the job's pace: there, slowing down only loses
successes, and a pacer that cuts on every spell of 429s falls to a request a second.

So answers are tallied by when their requests were sent, in windows of a quarter of a second
(joined until they hold ``MIN_ANSWERS`` answers): a window is the pace the requests went out
at, and what came of them, whenever the answers arrive. The two causes leave different marks
on windows sent at different paces: a limiter admits about the same successes a second
whatever the pace (the share that gets through falls as the pace rises), a shared quota lets
the same share through (the successes a second follow the pace). Once the recent windows span
paces at least 1.5 apart, the two are told apart by which of them varies less; for a shared
quota the pacer holds the pace of the window with the most successes a second. While it holds,
it cuts again only when the share of 429s rises clearly (beyond chance) above the share it has
been seeing.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final, NamedTuple

WINDOW_S: Final = 0.25
MIN_ANSWERS: Final = 20  # a window with fewer answers is joined to the next
MIN_SHARE: Final = 0.1  # below this, 429s are a limit touched now and then
MAX_SHARE: Final = 0.9  # above this, nothing gets through: a quota window, not a share
_SPREAD: Final = 1.5  # the recent windows' paces must differ this much to tell the causes apart
_CLEARER: Final = 1.5  # a shared quota when the successes a second vary this much more
_RISEN: Final = 0.1  # while holding: a share this much above the usual one (and 3 sigma)
_SMOOTHING: Final = 0.2  # while holding: the usual share, a moving average of the windows
_HISTORY: Final = 8


class Window(NamedTuple):
    requests_per_s: float
    share_limited: float
    successes_per_s: float
    answers: int


class GoodputJudge:
    """Tallies answers into windows by send time; judges whether slowing down helps."""

    def __init__(self) -> None:
        self._open: dict[int, list[int]] = {}  # window index -> [successes, 429s]
        self._latest = 0
        self._joined = [0, 0, 0]  # successes, 429s, windows: small closed windows joined
        self._windows: deque[Window] = deque(maxlen=_HISTORY)
        self.held_share: float | None = None
        """The usual share of 429s while a pace is held (None: slowing down helps)."""

    def answered(self, sent_at: float, limited: bool) -> Window | None:
        """Tally one answer; a window it completes, if it completes one."""
        index = int(sent_at // WINDOW_S)
        counts = self._open.get(index)
        if counts is None:
            counts = self._open[index] = [0, 0]
        counts[limited] += 1
        if self._latest - 1 <= index <= self._latest:
            return None  # every window before the last two is already closed
        self._latest = max(self._latest, index)
        done = [i for i in self._open if i <= self._latest - 2]  # answers all in, or nearly
        window = None
        for i in sorted(done):
            window = self._join(*self._open.pop(i)) or window
        return window

    def _join(self, ok: int, limited: int) -> Window | None:
        joined = self._joined
        joined[0], joined[1], joined[2] = joined[0] + ok, joined[1] + limited, joined[2] + 1
        answers = joined[0] + joined[1]
        if answers < MIN_ANSWERS:
            return None
        span = joined[2] * WINDOW_S
        window = Window(answers / span, joined[1] / answers, joined[0] / span, answers)
        self._joined = [0, 0, 0]
        self._windows.append(window)
        return window

    def pace_to_hold(self, window: Window) -> float | None:
        """The pace with the most successes, when this window shows that slowing down did not
        lower the share of 429s; None otherwise."""
        windows = list(self._windows)
        if not MIN_SHARE <= window.share_limited <= MAX_SHARE or len(windows) < 3:
            return None
        paces = [w.requests_per_s for w in windows]
        if max(paces) < _SPREAD * min(paces):
            return None
        through = _spread([1 - w.share_limited for w in windows])
        if _CLEARER * through >= _spread([w.successes_per_s for w in windows]):
            return None  # the successes a second hold steady: a limiter, slowing down helps
        self.held_share = window.share_limited
        best = max(windows, key=lambda w: w.successes_per_s)
        self._windows.clear()
        return best.requests_per_s

    def while_holding(self, window: Window) -> str:
        """ "over" (few 429s: the quota has room again), "risen" (clearly more 429s than
        usual: the job's own pace), or "hold"."""
        assert self.held_share is not None
        share, usual = window.share_limited, self.held_share
        if share < MIN_SHARE:
            self.held_share = None
            return "over"
        self.held_share = usual + _SMOOTHING * (share - usual)
        chance = 3 * math.sqrt(max(usual * (1 - usual), 0.01) / window.answers)
        if share > min(usual + max(_RISEN, chance), MAX_SHARE):
            return "risen"
        return "hold"


def _spread(values: list[float]) -> float:
    """The coefficient of variation: how much values vary, relative to their mean."""
    mean = sum(values) / len(values)
    if mean <= 0:
        return math.inf
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) / mean
