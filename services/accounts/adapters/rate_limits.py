"""An in-process sliding-window limit on requests per caller, for the public statement endpoints.

Per replica: N replicas let a caller make up to N times the limit. It is there to keep anyone
from scraping codes or burning CPU on signature checks, not to meter anyone exactly.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from shared.errors import RateLimited

# Callers remembered at once; past that the idlest are forgotten (memory stays bounded).
MAX_TRACKED_CALLERS = 50_000


class SlidingWindowLimiter:
    def __init__(
        self, limit: int, window_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def hit(self, caller: str) -> None:
        """Count one request of ``caller``; ``RateLimited`` (429, Retry-After) past the limit."""
        now = self._clock()
        with self._lock:
            hits = self._hits.pop(caller, None) or collections.deque()
            while hits and hits[0] <= now - self.window_seconds:
                hits.popleft()
            self._hits[caller] = hits  # most recently seen last
            while len(self._hits) > MAX_TRACKED_CALLERS:
                self._hits.popitem(last=False)
            if len(hits) >= self.limit:
                retry_after = max(1, int(hits[0] + self.window_seconds - now) + 1)
                raise RateLimited(
                    f"At most {self.limit} requests a minute here; try again in {retry_after} s.",
                    headers={"Retry-After": str(retry_after)},
                )
            hits.append(now)
