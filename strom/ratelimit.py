"""Token buckets: one per connection, or one per client key with a bounded memory."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; starts full."""

    def __init__(self, rate: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are that many."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def charge(self, cost: float) -> None:
        """Spend `cost` tokens after the fact (work whose size shows only once done); the
        bucket may go into debt, and refuses until it has refilled past it."""
        self.take(0.0)  # bring the refill up to now
        self._tokens -= cost

    @property
    def full(self) -> bool:
        """Whether the bucket has refilled completely (its client is as good as new)."""
        now = self._clock()
        return self._tokens + (now - self._at) * self.rate >= self.burst


class KeyedBuckets:
    """A token bucket per key (a client address, …), remembering at most `max_keys` keys.

    Made-up keys are cheap for a client, so memory is bounded: refilled buckets are forgotten
    (a new one starts full anyway), and beyond `max_keys` the least recently used goes.
    """

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        """How many keys are remembered."""
        return len(self._buckets)

    def take(self, key: str, cost: float = 1.0) -> bool:
        """Spend `cost` tokens of `key`'s bucket if it has them."""
        bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst,
                                                             clock=self._clock)
        self._buckets[key] = bucket  # most recently used last
        allowed = bucket.take(cost)
        self._forget()
        return allowed

    def charge(self, key: str, cost: float) -> None:
        """Spend `cost` more tokens of `key`'s bucket, into debt if need be."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.charge(cost)

    def _forget(self) -> None:
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            if len(self._buckets) <= self._max_keys and not oldest.full:
                return
            del self._buckets[key]
