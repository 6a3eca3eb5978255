"""When each charger refreshes its status: once an hour, at a minute of its own.

Contract §5 asks for a status at least hourly. A fleet refreshing all at once would send a
burst public relays answer with `rate-limited:`; instead each charger has a fixed offset into
the hour (from its id, the same after a restart) and a little random jitter on top (many
stroms with the same ids still spread). The jitter only ever brings a refresh earlier, and the
next one is never more than `PERIOD` after the last.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

PERIOD = 3600.0
JITTER = 60.0
REFRESH_CHECK = 5.0  # how often the refresh loop looks whose turn it is


def offset(cp_id: str, period: float = PERIOD) -> float:
    """The charger's own second of the hour (deterministic, spread evenly over ids)."""
    digest = hashlib.sha256(cp_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % int(period)


def next_refresh(cp_id: str, after: float, *, period: float = PERIOD, jitter: float = JITTER,
                 rng: Callable[[], float] = random.random) -> float:
    """The unix time of the charger's next refresh after `after` (its last one, or now):
    its offset into the next hour slot, less up to `jitter`, and at most `period` away."""
    base = after - after % period + offset(cp_id, period)
    while base <= after:
        base += period
    return max(after + 1.0, min(base - rng() * jitter, after + period))
