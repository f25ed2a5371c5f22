"""Token buckets: a client pacing at or below the rate never waits, a burst above it is refused.

Also Chargebee's kind of limit, a count over a sliding window (:class:`SlidingWindowLimit`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable

EPSILON = 1e-9  # floating-point slack so that exact pacing (10 x 0.1 s) refills a whole token


class TokenBucket:
    """`rate` tokens per second, holding at most `capacity` (the burst allowed after idling)."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def available(self) -> bool:
        self._refill()
        return self._tokens >= 1 - EPSILON

    def take(self) -> None:
        self._refill()
        self._tokens -= 1

    def seconds_until_available(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1 - EPSILON else (1 - self._tokens) / self.rate


class RateLimiter:
    """Buckets created on demand per key, all with the same rate and capacity."""

    def __init__(
        self, rate: float, *, per_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Allow `rate` requests every `per_s` seconds, with a burst of `rate`."""
        self.rate = rate
        self.per_s = per_s
        self._clock = clock
        self._buckets: dict[Hashable, TokenBucket] = {}

    def bucket(self, key: Hashable) -> TokenBucket:
        found = self._buckets.get(key)
        if found is None:
            found = TokenBucket(self.rate / self.per_s, max(1.0, self.rate), self._clock)
            self._buckets[key] = found
        return found


def admit(buckets: list[tuple[str, TokenBucket]]) -> tuple[str, float] | None:
    """Take one token from every bucket, or none: returns (refusing bucket's name, wait) if one is empty."""
    for name, bucket in buckets:
        if not bucket.available():
            return name, bucket.seconds_until_available()
    for _, bucket in buckets:
        bucket.take()
    return None


class SlidingWindowLimit:
    """At most `limit` requests accepted in any `window_s` seconds (Chargebee: "requests in the past
    60 seconds"). A refused request does not count; once the window holds `limit` accepted requests,
    every request is refused until the oldest of them leaves it."""

    def __init__(
        self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._accepted: deque[float] = deque()

    def admit(self) -> float | None:
        """Count the request and return None, or refuse it: the seconds until one would be accepted."""
        now = self._clock()
        while self._accepted and self._accepted[0] <= now - self.window_s:
            self._accepted.popleft()
        if len(self._accepted) < self.limit:
            self._accepted.append(now)
            return None
        return max(self._accepted[0] + self.window_s - now, EPSILON)
