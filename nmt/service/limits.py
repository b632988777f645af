"""LibreTranslate's per-client request limit (`req_limit`): at most so many requests a minute per API
key, or per client address where a request has no valid key, counted separately on each route.

As LibreTranslate (flask-limiter's moving window) does it: a request is refused while its client's
last minute already holds `limit` requests; one that is let in is counted with its cost (a list of
texts costs one per text), so a large batch goes through and the requests after it wait.
"""

import math
import time
from collections import deque
from typing import Callable

from nmt.service.requests import ApiError

WINDOW_SECONDS = 60.0


class _Window:
    """One client's requests of the last minute on one route, and their summed cost."""

    def __init__(self):
        self.requests: deque[tuple[float, int]] = deque()  # (time, cost), oldest first
        self.used = 0

    def forget_before(self, start: float) -> None:
        while self.requests and self.requests[0][0] <= start:
            self.used -= self.requests.popleft()[1]


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self._windows: dict[tuple[str, str], _Window] = {}  # by (route, client)
        self._next_sweep = 0.0

    def admit(self, route: str, client: str, cost: int = 1) -> None:
        """Count a request, or refuse it with 429 "Slowdown: ..." and when to retry."""
        now = self.clock()
        self._sweep(now)
        window = self._windows.setdefault((route, client), _Window())
        window.forget_before(now - WINDOW_SECONDS)
        if window.used >= self.per_minute:
            # It may come again once enough of the window's oldest requests have left it.
            excess = window.used - self.per_minute
            for at, spent in window.requests:
                excess -= spent
                if excess < 0:
                    break
            retry = max(1, math.ceil(at + WINDOW_SECONDS - now))
            raise ApiError(429, f"Slowdown: {self.per_minute} per 1 minute", {"Retry-After": str(retry)})
        window.requests.append((now, cost))
        window.used += cost

    def _sweep(self, now: float) -> None:
        """Forget the clients with no request in the last minute, once a minute, so memory stays bounded
        by the clients of the last minute."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + WINDOW_SECONDS
        for key, window in list(self._windows.items()):
            window.forget_before(now - WINDOW_SECONDS)
            if not window.requests:
                del self._windows[key]
