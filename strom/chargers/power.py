"""How a site's power limit is shared among its charging sessions. Pure: no I/O.

A site is a group of chargers behind one grid connection (a house fuse, a transformer). Its
limit is shared by max-min fairness with floors: every session the limit can give its minimum
(the least a car charges at: 6 A per IEC 61851) gets at least that, the rest is spread evenly,
no session above its own maximum (its charger's cap), and what one cannot take goes to the
others. Sessions are admitted in the order they started: one that cannot get its minimum
without pushing an earlier one below its own gets 0 W (it waits, and is reported) until a
session ends. Allocations are whole watts, so their sum never exceeds the limit once rounded.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

# The least power a car charges at: 6 A on one phase at 230 V (IEC 61851-1).
DEFAULT_MIN_W = 1380
# The most a site's limit (or a charger's cap) may be: 10 MW, beyond any grid connection
# strom's chargers share.
MAX_SITE_W = 10_000_000


@dataclass(frozen=True, slots=True)
class Demand:
    """One charging session: `key` names it (charger, connector); its bounds in whole W."""

    key: Hashable
    max_w: int
    min_w: int = DEFAULT_MIN_W


@dataclass(frozen=True, slots=True)
class Allocation:
    """Watts per session key, and the sessions that got 0 W because their minimum did not fit."""

    watts: dict[Hashable, int]
    waiting: tuple[Hashable, ...]


def allocate(limit_w: float, demands: Sequence[Demand]) -> Allocation:
    """Share `limit_w` among `demands`, given in the order the sessions started."""
    budget = max(0, math.floor(limit_w))
    admitted: list[Demand] = []
    waiting: list[Hashable] = []
    floors = 0
    for demand in demands:
        if demand.min_w <= demand.max_w and floors + demand.min_w <= budget:
            admitted.append(demand)
            floors += demand.min_w
        else:
            waiting.append(demand.key)
    level = _water_level(budget, admitted)
    watts = {d.key: min(max(level, d.min_w), d.max_w) for d in admitted}
    watts.update((key, 0) for key in waiting)
    return Allocation(watts, tuple(waiting))


def _water_level(budget: int, admitted: Sequence[Demand]) -> int:
    """The highest whole level L with sum(clamp(L, min, max)) <= budget (the floors fit)."""
    def used(level: int) -> int:
        return sum(min(max(level, d.min_w), d.max_w) for d in admitted)

    low, high = 0, max((d.max_w for d in admitted), default=0)
    if used(high) <= budget:
        return high
    while high - low > 1:  # used(low) <= budget < used(high)
        middle = (low + high) // 2
        if used(middle) <= budget:
            low = middle
        else:
            high = middle
    return low
