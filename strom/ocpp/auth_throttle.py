"""Backoff for wrong OCPP passwords, per charger id and per remote address.

Each check of a password costs a full scrypt (tens of milliseconds of CPU), so guessing must
cost the guesser time and strom almost nothing. Every key (a charger id, an address) keeps a
failure score that leaks one failure per `max_backoff` seconds. Past `budget` failures the key
is blocked for a doubling backoff (1 s, 2 s, 4 s, … up to `max_backoff`), and attempts while it
is blocked are refused at once, without hashing and without extending the block. So a guesser
gets about one scrypt per backoff window, and the real charger is never locked out for longer
than `max_backoff` after the guessing stops; a charger that fails now and then (a wrong
password retried every minute) leaks its score and is never blocked. The central system lets
a charger whose password it has verified before in from a throttled address (a NAT or proxy in
front of many chargers), since that check needs no scrypt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

BASE_BACKOFF_SECONDS = 1.0
MAX_KEYS = 10_000  # addresses are cheap to make up: bound what is remembered


@dataclass(slots=True)
class _Record:
    score: float
    at: float  # when the score was last brought up to date
    blocked_until: float = 0.0


class AuthThrottle:
    """`retry_after(keys)` before checking a password; `failed(keys)` / `succeeded(keys)` after."""

    def __init__(self, *, budget: int, max_backoff: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._budget = budget
        self._max_backoff = max_backoff
        self._clock = clock
        self._records: dict[str, _Record] = {}

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until a key of `keys` may try again; 0 when a password may be checked now."""
        now = self._clock()
        waits = [r.blocked_until - now for k in keys if (r := self._records.get(k)) is not None]
        # Clamped: `(now + backoff) - now` may come out a rounding error above the cap.
        return min(self._max_backoff, max([0.0, *waits]))

    def failed(self, keys: Iterable[str]) -> None:
        """A wrong password: raise each key's score, and block the keys over budget."""
        now = self._clock()
        for key in keys:
            record = self._records.pop(key, None) or _Record(0.0, now)
            record.score = self._leaked(record, now) + 1.0
            record.at = now
            excess = record.score - self._budget
            if excess > 0:
                backoff = BASE_BACKOFF_SECONDS * 2 ** min(excess - 1, 32)
                record.blocked_until = now + min(backoff, self._max_backoff)
            self._records[key] = record  # re-inserted: the dict stays ordered by last failure
        self._forget_old(now)

    def succeeded(self, keys: Iterable[str]) -> None:
        """The right password: these keys start afresh."""
        for key in keys:
            self._records.pop(key, None)

    def _leaked(self, record: _Record, now: float) -> float:
        return max(0.0, record.score - (now - record.at) / self._max_backoff)

    def _forget_old(self, now: float) -> None:
        """Drop records that have leaked away, oldest first, and any beyond MAX_KEYS."""
        while self._records:
            key, oldest = next(iter(self._records.items()))
            spent = self._leaked(oldest, now) == 0 and oldest.blocked_until <= now
            if not spent and len(self._records) <= MAX_KEYS:
                return
            del self._records[key]
