"""Metering: a session's readings, and time passing, turned into consumed money.

A reading is billed under the session's locked price (`strom/tariffs/model.py`); a charging
session stops when what is left of its payment no longer covers the worst case until the next
reading (its room), and an unconfirmed stop holds back that worst case (`holds.py`). The tick
bills time even when a charger sends nothing (per-minute prices, growing holds) and runs the
meter watchdog (`watchdog.py`). `SessionService` mixes this in: the attributes and methods
declared below are the service's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from strom.config import SessionSettings
from strom.events import MeterSample
from strom.sessions import holds, ledger
from strom.sessions.model import ENDED_STATES, METERED_STATES, Session, State
from strom.sessions.repository import SessionRepository
from strom.sessions.watchdog import MeterWatchdog
from strom.store.db import Database
from strom.tariffs.model import Rating, cost_under_lock
from strom.timeutil import iso, parse_iso, utcnow

log = logging.getLogger("strom.sessions.lifecycle")

TICK_SECONDS = 15.0
# A hold covers the worst case until the next tick refreshes it, with room to spare.
HOLD_HORIZON_SECONDS = 2 * TICK_SECONDS


class MeterFlow:
    """The metering part of `SessionService`: readings and ticks → consumed, room, holds."""

    _db: Database
    _settings: SessionSettings
    repo: SessionRepository
    watchdog: MeterWatchdog
    _tick_seconds: float
    _meter_interval: float
    _power_cap: Callable[[str, int], float | None] | None

    if TYPE_CHECKING:  # SessionService's own, which this part calls
        def publish(self, session: Session) -> None: ...

        def _ensure_stopping(self, session: Session) -> None: ...

        async def _reopen_and_stop(self, session_id: str, why: str, *,
                                   stop: bool = True) -> None: ...

    async def on_meter(self, sample: MeterSample) -> None:
        """A reading: billed while charging or stopping; a stopped session's means the charger
        is still charging it (billed to what is left, and stopped again)."""
        if sample.transaction_id is None:
            return
        session = await self.repo.by_transaction(sample.cp_id, sample.transaction_id)
        if session is None:
            return
        if session.state in ENDED_STATES:
            if not self._shows_more(session, sample.energy_wh, sample.power_w) \
                    or not await self.repo.transaction_open(sample.transaction_id):
                return  # a stale reading, or one after the charger's StopTransaction
            await self._reopen_and_stop(session.id, "the charger kept charging after the end")
        await self._meter(session.id, energy_register_wh=sample.energy_wh, power_w=sample.power_w,
                          soc_percent=sample.soc_percent, at=sample.timestamp)

    @staticmethod
    def _shows_more(session: Session, register_wh: float | None, power_w: float | None) -> bool:
        """True when a reading shows energy beyond what the session recorded, or power."""
        if power_w is not None and power_w > 0:
            return True
        if register_wh is None or session.meter_start_wh is None:
            return False
        return register_wh - session.meter_start_wh > session.energy_wh + 0.5

    async def _meter(self, session_id: str, *, energy_register_wh: float | None,
                     power_w: float | None = None, soc_percent: float | None = None,
                     final: bool = False, at: datetime | None = None) -> None:
        """Turn a meter reading into consumed money; stop when the budget is nearly used up.

        `final` is the reading of a StopTransaction: the charger has stopped already. `at` is
        when the charger read it (slot-by-slot prices), now if not given.
        """
        stop = False
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None or session.state not in METERED_STATES:
                return
            now = utcnow()
            energy = session.energy_wh
            if energy_register_wh is not None and session.meter_start_wh is not None:
                # A meter never runs backwards; a smaller reading is a glitch, not a refund.
                energy = max(energy, energy_register_wh - session.meter_start_wh)
            consumed, unbilled, rating = self._consumed(session, energy, at)
            fields: dict[str, Any] = {"energy_wh": energy, "consumed_msat": consumed,
                                         "unbilled_msat": unbilled}
            if rating.rate_msat_per_kwh != session.rate_msat_per_kwh:
                fields.update(rate_msat_per_kwh=rating.rate_msat_per_kwh,
                              rate_since_wh=rating.since_wh, rated_msat=rating.rated_msat)
            if energy_register_wh is not None or power_w is not None:
                fields["last_reading_at"] = iso(now)
                self.watchdog.heard(session.id)
            if power_w is not None:
                fields["power_w"] = power_w
                fields["max_power_w"] = max(power_w, session.max_power_w or 0.0)
            if soc_percent is not None:
                fields["soc_percent"] = soc_percent
            if session.state == State.STOPPING_UNCONFIRMED:
                after = replace(session, **fields)
                fields["held_msat"] = 0 if final else self._hold(after, now)
            elif not final and session.state == State.CHARGING and consumed \
                    + self._room(session, consumed, now) >= session.left_msat:
                fields.update(state=State.STOPPING, stop_reason="budget used up")
                stop = True
            if unbilled > session.unbilled_msat:
                log.warning("session %s: unbilled energy: %.0f Wh delivered, %d msat of it"
                            " beyond the payment", session.id, energy, unbilled)
            await self.repo.update(conn, session.id, **fields)
            await ledger.energy_consumed(conn, session.id, consumed - session.consumed_msat)
            session = await self.repo.get_in(conn, session.id)
        assert session is not None
        self.publish(session)
        if stop:
            log.info("session %s: budget used up, stopping", session.id)
            self._ensure_stopping(session)

    def _room(self, session: Session, consumed: int, now: datetime) -> int:
        """What to keep free before stopping: the worst case until the next reading (max power
        for one of the charger's intervals), at least the last interval's cost, and the margin.

        The interval is the charger's own cadence: the gap since its last reading or its
        start (1 s at least, at most the watchdog's limit).
        """
        interval = self._meter_interval
        if (since := holds.last_evidence(session)) is not None:
            interval = min(max((now - since).total_seconds(), 1.0),
                           self._meter_interval * self._settings.watchdog_intervals)
        worst = holds.worst_case_msat(session.tariff, self._max_power(session), interval)
        return max(worst, consumed - session.consumed_msat) + self._settings.safety_margin_msat

    def _consumed(self, session: Session, energy_wh: float,
                  at: datetime | None) -> tuple[int, int, Rating]:
        """(consumed, unbilled, rating): what the session owes so far, never less than before
        and never more than is left of the payment; what the payment cannot cover is unbilled.

        A charger's clock may be off: its reading time counts only between start and now.
        """
        now = utcnow()
        started = parse_iso(session.started_at) if session.started_at else now
        minutes = (now - started) / timedelta(minutes=1)
        owed, rating = cost_under_lock(
            session.tariff, Rating(session.rate_msat_per_kwh, session.rate_since_wh,
                                   session.rated_msat),
            session.energy_wh, energy_wh, minutes, min(max(at or now, started), now))
        consumed = max(session.consumed_msat, min(owed, session.left_msat))
        return consumed, max(0, owed - consumed), rating

    def _cap(self, session: Session) -> float | None:
        if self._power_cap is None or session.connector is None:
            return None
        return self._power_cap(session.cp_id, session.connector)

    def _max_power(self, session: Session) -> float:
        return holds.max_power_w(session, self._settings.max_power_w, self._cap(session))

    def _hold(self, session: Session, now: datetime) -> int:
        return holds.hold_msat(session, configured_w=self._settings.max_power_w, now=now,
                               horizon_seconds=HOLD_HORIZON_SECONDS, cap_w=self._cap(session))

    async def _tick(self) -> None:
        """Time passes even when a charger sends nothing: per-minute prices count, holds grow,
        and the watchdog looks for chargers that went quiet."""
        while True:
            await asyncio.sleep(self._tick_seconds)
            await self.tick_once()

    async def tick_once(self) -> None:
        """One pass of the tick over every charging and unconfirmed session."""
        for session in await self.repo.in_states(State.CHARGING, State.STOPPING_UNCONFIRMED):
            try:
                await self._meter(session.id, energy_register_wh=None)
                if session.state == State.CHARGING:
                    await self.watchdog.watch(session)
            except Exception:
                log.exception("session %s: metering tick failed", session.id)

