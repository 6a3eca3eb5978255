"""The meter watchdog: a charging session whose charger went quiet is asked, then stopped.

No usable reading (energy or power) for `[sessions] watchdog_intervals` × the meter interval
while charging and connected: TriggerMessage(MeterValues); still none one interval later: stop,
with the reason said. An offline charger is left alone: its queued readings come when it
reconnects. `SessionService` runs `watch` on every tick and calls `heard` on every reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from strom.chargers.control import ChargerControl, Trigger
from strom.sessions import holds
from strom.sessions.model import Session
from strom.timeutil import utcnow

log = logging.getLogger("strom.sessions.lifecycle")


class MeterWatchdog:
    """Asks a quiet charger for a reading, and stops its session when none comes."""

    def __init__(self, *, chargers: ChargerControl, meter_interval: float, intervals: int,
                 stop: Callable[[str, str], Awaitable[object]]) -> None:
        """`meter_interval`: the most seconds between a charger's readings strom expects;
        `intervals`: how many of them may pass without one; `stop(session_id, reason)`."""
        self._chargers = chargers
        self._interval = meter_interval
        self._intervals = intervals
        self._stop = stop
        self._asked: dict[str, float] = {}  # session → loop time of its TriggerMessage

    def heard(self, session_id: str) -> None:
        """A usable reading arrived: the session's charger is not quiet."""
        self._asked.pop(session_id, None)

    async def watch(self, session: Session) -> None:
        """No usable reading for `watchdog_intervals` intervals: ask for one
        (TriggerMessage MeterValues); still none one interval later: stop and say why."""
        since = holds.last_evidence(session)
        interval = self._interval
        if not self._chargers.is_connected(session.cp_id):
            # Nobody to ask: its queued readings arrive when it reconnects (the quiet time
            # counts from the last one, so a charger back without readings is asked at once).
            self._asked.pop(session.id, None)
            return
        if since is None or session.active_connector_id is None or \
                (utcnow() - since).total_seconds() < interval * self._intervals:
            return
        loop_now = asyncio.get_running_loop().time()
        asked = self._asked.get(session.id)
        if asked is None:
            self._asked[session.id] = loop_now
            log.warning("session %s: no meter reading for %.0f s; asking the charger",
                        session.id, (utcnow() - since).total_seconds())
            result = await self._chargers.trigger(session.cp_id, Trigger.METER_VALUES,
                                                  session.active_connector_id)
            if not result.ok:
                log.warning("session %s: TriggerMessage failed: %s", session.id, result.reason)
        elif loop_now - asked >= interval:
            self._asked.pop(session.id, None)
            log.warning("session %s: still no meter reading; stopping", session.id)
            await self._stop(session.id, "stopped: the charger sent no meter readings")
