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


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self._windows: dict[tuple[str, str], deque[tuple[float, int]]] = {}  # (route, client) -> (time, cost)
        self._next_sweep = 0.0

    def admit(self, route: str, client: str, cost: int = 1) -> None:
        """Count a request, or refuse it with 429 "Slowdown: ..." and when to retry."""
        now = self.clock()
        self._sweep(now)
        window = self._windows.setdefault((route, client), deque())
        while window and window[0][0] <= now - WINDOW_SECONDS:
            window.popleft()
        used = sum(c for _, c in window)
        if used >= self.per_minute:
            # The request may come again once enough of the window's oldest requests have left it.
            excess, leaves = used - self.per_minute, window[0][0]
            for at, c in window:
                leaves, excess = at, excess - c
                if excess < 0:
                    break
            retry = max(1, math.ceil(leaves + WINDOW_SECONDS - now))
            raise ApiError(429, f"Slowdown: {self.per_minute} per 1 minute", {"Retry-After": str(retry)})
        window.append((now, cost))

    def _sweep(self, now: float) -> None:
        """Forget clients whose last request left the window, once a minute, so memory stays bounded
        by the clients of the last minute."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + WINDOW_SECONDS
        gone = [key for key, window in self._windows.items() if not window or window[-1][0] <= now - WINDOW_SECONDS]
        for key in gone:
            del self._windows[key]
