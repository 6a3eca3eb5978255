"""The worst case a charger may still deliver, in money: what a session holds back. No I/O.

A charger that has not confirmed its stop may be charging at full power since its last
reading. Until it sends the final reading, that much of the payment is not the payer's yet.
"""

from __future__ import annotations

import math
from datetime import datetime

from strom.sessions.model import Session
from strom.tariffs.model import Tariff
from strom.timeutil import parse_iso


def max_power_w(session: Session, configured_w: float, cap_w: float | None = None) -> float:
    """The connector's maximum: configured, or the power limit its charger accepted for the
    session (`cap_w`, a site's share) when lower; what the session showed if that is more."""
    limit = configured_w if cap_w is None else min(configured_w, cap_w)
    return max(limit, session.max_power_w or 0.0)


def worst_case_msat(tariff: Tariff, power_w: float, seconds: float) -> int:
    """What `seconds` at `power_w` may cost (energy and time, grace minutes ignored)."""
    seconds = max(seconds, 0.0)
    energy = math.ceil(tariff.price_msat_per_kwh * power_w * seconds / 3_600_000.0)
    return energy + math.ceil(tariff.price_msat_per_minute * seconds / 60.0)


def last_evidence(session: Session) -> datetime | None:
    """When the charger last told us how much it delivered (or started)."""
    at = session.last_reading_at or session.started_at
    return parse_iso(at) if at else None


def hold_msat(session: Session, *, configured_w: float, now: datetime,
              horizon_seconds: float, cap_w: float | None = None) -> int:
    """What an unconfirmed stop holds: the worst case since the last reading and until the
    next look (`horizon_seconds`), capped at what is left after the energy billed.

    A hold that still covers half the horizon stays as it is, so the refundable amount a
    withdraw link offered does not shrink under the payer's wallet at every look.
    """
    since = last_evidence(session)
    seconds = (now - since).total_seconds() if since else 0.0
    power = max_power_w(session, configured_w, cap_w)
    cap = max(0, session.left_msat - session.consumed_msat)
    if session.held_msat >= min(cap, worst_case_msat(session.tariff, power,
                                                     seconds + horizon_seconds / 2)):
        return min(session.held_msat, cap)
    return min(cap, worst_case_msat(session.tariff, power, seconds + horizon_seconds))
