"""Per-token request rates and concurrent streams.

Both are checked by the adapters right after authentication, with the token id as key, so one
misbehaving phone cannot starve the others. State is per server process (each API replica
limits on its own).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from mobiletrain.core.errors import ErrorCode, MobiletrainError


class RateLimiter:
    """A token bucket per key: ``rate`` requests per second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one request from ``key``'s bucket or raise RATE_LIMITED."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                retry = (1.0 - tokens) / self.rate
                raise MobiletrainError(
                    ErrorCode.RATE_LIMITED,
                    f"more than {self.rate:g} requests per second; retry in {retry:.2f} s",
                    retry_after_seconds=round(retry, 3),
                )
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:  # forget idle keys rather than grow forever
                self._buckets.clear()


class StreamSlots:
    """At most ``limit`` concurrent streams (uploads, watches, downloads) per key."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Occupy a slot for the enclosed stream or raise TOO_MANY_STREAMS."""
        with self._lock:
            count = self._open.get(key, 0)
            if self.limit > 0 and count >= self.limit:
                raise MobiletrainError(
                    ErrorCode.TOO_MANY_STREAMS,
                    f"this token already has {count} open streams; the limit is {self.limit}",
                )
            self._open[key] = count + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._open.get(key, 1) - 1
                if left > 0:
                    self._open[key] = left
                else:
                    self._open.pop(key, None)

    def check(self, key: str) -> None:
        """Raise TOO_MANY_STREAMS now if ``key`` has no free slot (before a response starts)."""
        with self._lock:
            count = self._open.get(key, 0)
        if self.limit > 0 and count >= self.limit:
            raise MobiletrainError(
                ErrorCode.TOO_MANY_STREAMS,
                f"this token already has {count} open streams; the limit is {self.limit}",
            )

    def open_streams(self, key: str) -> int:
        """How many streams ``key`` holds now."""
        with self._lock:
            return self._open.get(key, 0)
