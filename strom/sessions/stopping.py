"""Stopping a session, and settling it on the charger's evidence.

A stop is asked (RemoteStop) until the charger confirms it with its final reading; one it has
not confirmed in time, rejected, or could not hear becomes `stopping_unconfirmed` and holds back
the worst case it may still deliver (`holds.py`). A charger that shows an ended session still
charging is stopped again, and its energy billed to what is left. `SessionService` mixes this
in: the attributes and methods declared below are the service's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

import aiosqlite

from strom.chargers.control import ChargerControl, Trigger
from strom.config import SessionSettings
from strom.events import EventBus, SessionChanged
from strom.failpoints import crash_point
from strom.sessions.connectors import reason_in_words
from strom.sessions.model import ENDED_STATES, METERED_STATES, Session, State
from strom.sessions.repository import SessionRepository
from strom.store.db import Database
from strom.store.extra_transactions import ExtraTransactionRepository
from strom.timeutil import iso, utcnow

log = logging.getLogger("strom.sessions.lifecycle")

# A stop the charger has not confirmed is asked again after 2 s, 4 s, … up to every 5 minutes,
# and at once when the charger reconnects.
STOP_RETRY_FIRST_SECONDS = 2.0
STOP_RETRY_MAX_SECONDS = 300.0
# Connector statuses that show a charger is still delivering energy, or no longer is.
CHARGING_STATUSES = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})
ENDED_STATUSES = frozenset({"Available", "Preparing", "Finishing"})


class SessionError(Exception):
    """A request about a session that cannot be served; the message is for the user."""


class StopFlow:
    """The stopping part of `SessionService`: RemoteStop until confirmed, holds, settling."""

    _db: Database
    _bus: EventBus
    _settings: SessionSettings
    _chargers: ChargerControl
    repo: SessionRepository
    _stoppers: set[str]
    _settling: set[str]
    _woken: dict[str, asyncio.Event]
    _extras: ExtraTransactionRepository

    if TYPE_CHECKING:  # SessionService's own, which this part calls
        def _spawn(self, coro: Awaitable[None], name: str) -> None: ...

        def publish(self, session: Session) -> None: ...

        def _hold(self, session: Session, now: datetime) -> int: ...

        @staticmethod
        def _shows_more(session: Session, register_wh: float | None,
                        power_w: float | None) -> bool: ...

        async def _fail(self, conn: aiosqlite.Connection, session: Session,
                        reason: str) -> None: ...

        async def _meter(self, session_id: str, *, energy_register_wh: float | None,
                         power_w: float | None = None, soc_percent: float | None = None,
                         final: bool = False, at: datetime | None = None) -> None: ...

    async def request_stop(self, session_id: str, reason: str) -> Session:
        """Stop a session (driver or operator); the charger's StopTransaction ends it.

        Before the RemoteStart went out (`paid`) the session fails at once, all refundable.
        While it is out or on its way (`starting`: it may wait behind another call to the
        charger) the stop is only recorded: the payment stays held until the charger answers,
        since a late StartTransaction may still bill energy. Its
        StartTransaction then makes it `stopping` (`on_transaction_started`), a rejection or
        the start timeout `failed` with everything refundable; a RemoteStart still waiting for
        its turn is not sent (`_remote_start`'s `still_wanted`), and the session fails at once.
        """
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None:
                raise SessionError("no such session")
            if session.state == State.PAID:
                await self._fail(conn, session, f"stopped before charging: {reason}")
            elif session.state == State.STARTING and session.stop_reason is None:
                log.info("session %s: stop asked while starting (%s); held until the charger"
                         " answers", session.id, reason)
                await self.repo.update(conn, session.id, stop_reason=reason)
            elif session.state == State.CHARGING:
                await self.repo.update(conn, session.id, state=State.STOPPING, stop_reason=reason)
            session = await self.repo.get_in(conn, session_id)
        assert session is not None
        self.publish(session)
        if session.state in (State.STOPPING, State.STOPPING_UNCONFIRMED):
            crash_point("stopping")
            self._ensure_stopping(session)
        return session

    def _ensure_stopping(self, session: Session) -> None:
        """One RemoteStop loop per session, until the charger confirms."""
        if session.id in self._stoppers:
            return
        self._stoppers.add(session.id)
        self._spawn(self._stop_until_stopped(session.id, session.cp_id), f"stop:{session.id}")

    def _wake(self, cp_id: str) -> None:
        event = self._woken.get(cp_id)
        if event is not None:
            event.set()

    async def _stop_until_stopped(self, session_id: str, cp_id: str) -> None:
        """RemoteStop, again with backoff and at once after a reconnect, until the charger
        confirms; a stop not confirmed within `stop_timeout` (or rejected) becomes
        `stopping_unconfirmed` and holds the worst case back from the refund."""

        async def ask(elapsed: float) -> float | None:
            session = await self.repo.get(session_id)
            if session is None or session.state not in (State.STOPPING,
                                                        State.STOPPING_UNCONFIRMED):
                return None
            if session.state == State.STOPPING and elapsed >= self._settings.stop_timeout:
                await self.unconfirm(session_id, "no StopTransaction in time")
            if self._chargers.is_connected(session.cp_id):
                assert session.transaction_id is not None
                if not await self._remote_stop(session.cp_id, session.transaction_id,
                                               f"session {session.id}"):
                    await self.unconfirm(session_id, "the charger rejected RemoteStop")
            # A stop still `stopping` is asked again by its timeout, to become unconfirmed.
            return self._settings.stop_timeout if session.state == State.STOPPING else math.inf

        async def woken() -> None:
            await self._ask_connector_status(session_id)

        try:
            await self._ask_stop_until_done(cp_id, ask, woken)
        finally:
            self._stoppers.discard(session_id)

    async def _ask_stop_until_done(self, cp_id: str,
                                   ask: Callable[[float], Awaitable[float | None]],
                                   woken: Callable[[], Awaitable[None]] | None = None) -> None:
        """The RemoteStop retry loop of a session's stop and of an extra transaction's: `ask`
        (given the seconds since the first ask) sends RemoteStop when the charger is
        connected and returns by when (seconds since the first ask) to ask again at the
        latest, None when nothing is left to stop. Between asks it waits 2 s, 4 s, … up to
        5 minutes; when the charger reconnects or reports it runs `woken` and asks at once."""
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        delay = STOP_RETRY_FIRST_SECONDS
        event = self._woken.setdefault(cp_id, asyncio.Event())
        while True:
            event.clear()
            latest = await ask(loop.time() - asked_at)
            if latest is None:
                return
            wait = min(delay, max(0.1, asked_at + latest - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=wait)
            if event.is_set():
                delay = STOP_RETRY_FIRST_SECONDS  # back online: ask again now
                await asyncio.sleep(0.2)  # let its queued messages arrive first
                if woken is not None:
                    await woken()
            else:
                delay = min(delay * 2, STOP_RETRY_MAX_SECONDS)

    async def _ask_connector_status(self, session_id: str) -> None:
        """A charger back online that has not confirmed our stop: ask what its connector shows
        (TriggerMessage StatusNotification). Some come back without a word about a transaction
        that ended while they were offline; their status answer settles it
        (`on_connector_status`)."""
        session = await self.repo.get(session_id)
        if session is None or session.state != State.STOPPING_UNCONFIRMED \
                or session.active_connector_id is None \
                or not self._chargers.is_connected(session.cp_id):
            return
        result = await self._chargers.trigger(session.cp_id, Trigger.STATUS,
                                              session.active_connector_id)
        if not result.ok:  # offline again, CALLERROR, timeout: RemoteStop goes on
            log.info("session %s: no StatusNotification asked: %s", session_id, result.reason)

    async def _remote_stop(self, cp_id: str, transaction_id: int, whose: str) -> bool:
        """RemoteStopTransaction; False only when the charger answers no. `whose` names the
        transaction in the log."""
        result = await self._chargers.stop(cp_id, transaction_id)
        if result.answered and not result.ok:
            log.warning("%s: charger rejected RemoteStop of transaction %d", whose,
                        transaction_id)
            return False
        if not result.ok:
            # Offline, CALLERROR, timeout: the loop asks again; the hold covers the meantime.
            log.warning("%s: RemoteStop failed: %s", whose, result.reason)
        return True

    def _ensure_stopping_extra(self, cp_id: str, transaction_id: int) -> None:
        """One RemoteStop loop per extra transaction, until the charger stops it."""
        key = f"extra:{transaction_id}"
        if key in self._stoppers:
            return
        self._stoppers.add(key)
        self._spawn(self._stop_extra(cp_id, transaction_id, key), f"stop-extra:{transaction_id}")

    async def _stop_extra(self, cp_id: str, transaction_id: int, key: str) -> None:
        """RemoteStop an extra transaction (another one a charger started with a session's
        idTag) like a session's unconfirmed stop, until its StopTransaction: a charger that
        rejects, ignores or cannot hear it is asked again. Nothing is held: it is not billed."""

        async def ask(_: float) -> float | None:
            extra = await self._extras.get(transaction_id)
            if extra is None or not extra.open:
                return None
            if self._chargers.is_connected(cp_id):
                await self._remote_stop(cp_id, transaction_id,
                                        f"extra transaction of session {extra.session_id}")
            return math.inf

        try:  # its StopTransaction, queued while it was offline, ends the loop
            await self._ask_stop_until_done(cp_id, ask)
        finally:
            self._stoppers.discard(key)

    async def unconfirm(self, session_id: str, why: str) -> Session | None:
        """A stop the charger has not confirmed: hold the worst case, release the rest."""
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None:
                return None
            held = self._hold(session, utcnow())
            if await self.repo.update(conn, session_id, expect_state=State.STOPPING,
                                      state=State.STOPPING_UNCONFIRMED, held_msat=held):
                log.warning("session %s: stop unconfirmed (%s): %d msat held, %d msat"
                            " refundable now", session_id, why, held,
                            session.refundable_msat - held)
            session = await self.repo.get_in(conn, session_id)
        assert session is not None
        self.publish(session)
        return session

    async def on_transaction_stopped(self, cp_id: str, transaction_id: int, meter_stop_wh: float,
                                     reason: str) -> None:
        """The charger's final reading: bill it and settle, also for a session that ended
        before (its last energy is billed to what is left)."""
        session = await self.repo.by_transaction(cp_id, transaction_id)
        if session is None:
            await self._extra_stopped(transaction_id)
            return
        if session.state in ENDED_STATES:
            if not self._shows_more(session, meter_stop_wh, None):
                return
            await self._reopen_and_stop(session.id, "the charger stopped after the end",
                                        stop=False)
        await self._meter(session.id, energy_register_wh=meter_stop_wh, final=True)
        await self._finalize(session.id, reason_in_words(reason))

    async def _extra_stopped(self, transaction_id: int) -> None:
        """An extra transaction's StopTransaction: its energy is nobody's to bill (not the
        session's payer's), so it is reported as unbilled (log, `strom ledger check`)."""
        extra = await self._extras.get(transaction_id)
        if extra is None or extra.energy_wh is None:
            return
        log.warning("charger %s: extra transaction %d (idTag of session %s) stopped: %.0f Wh"
                    " delivered, unbilled", extra.cp_id, transaction_id, extra.session_id,
                    extra.energy_wh)

    async def on_connector_status(self, cp_id: str, connector_id: int, status: str) -> None:
        """A connector's status is evidence too: still charging a session that ended → stop it
        again; no longer charging an unconfirmed one → settle it on its last reading."""
        if connector_id == 0:
            return
        if status in CHARGING_STATUSES:
            if connector_id in await self.repo.busy_connectors(cp_id):
                return  # a running session's own charging
            session = await self.repo.still_charging_after_end(cp_id, connector_id)
            if session is not None:
                await self._reopen_and_stop(session.id, "the charger kept charging after the end")
        elif status in ENDED_STATUSES:
            for session in await self.repo.list(cp_id=cp_id, state=State.STOPPING_UNCONFIRMED):
                if session.active_connector_id == connector_id \
                        and session.id not in self._settling:
                    self._settling.add(session.id)
                    self._spawn(self._settle_after_status(session.id), f"settle:{session.id}")

    async def _settle_after_status(self, session_id: str) -> None:
        """The connector says the transaction ended: give its StopTransaction (queued while
        offline) `stop_timeout` to arrive, else settle on the last reading."""
        try:
            await asyncio.sleep(self._settings.stop_timeout)
            session = await self.repo.get(session_id)
            if session is not None and session.state == State.STOPPING_UNCONFIRMED:
                log.warning("session %s: the connector shows the transaction ended, no"
                            " StopTransaction; settling on the last reading", session_id)
                await self._finalize(session_id, "the charger shows the transaction ended")
        finally:
            self._settling.discard(session_id)

    async def _reopen_and_stop(self, session_id: str, why: str, *, stop: bool = True) -> None:
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None or session.state not in ENDED_STATES:
                return
            await self._reopen(conn, session, why)
            session = await self.repo.get_in(conn, session_id)
        assert session is not None
        self.publish(session)
        if stop:
            self._ensure_stopping(session)

    async def _reopen(self, conn: aiosqlite.Connection, session: Session, why: str) -> None:
        """An ended session the charger is still charging: unconfirmed again, what is left
        held for its energy, and reported."""
        held = self._hold(session, utcnow())
        log.warning("session %s (%s): %s; transaction %s, %d msat held", session.id,
                    session.state.value, why, session.transaction_id, held)
        await self.repo.update(conn, session.id, state=State.STOPPING_UNCONFIRMED,
                               held_msat=held, stop_reason=session.stop_reason or why)

    async def _finalize(self, session_id: str, reason: str) -> None:
        """Charging is over: what is left of the payment becomes refundable."""
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None or session.state not in METERED_STATES:
                return
            left = session.refundable_msat + session.held_msat
            if left > 0 or await self.repo.has_pending_refund(conn, session.id):
                final = State.STOPPED
            else:
                final = State.REFUNDED if session.refunded_msat else State.SETTLED
            if final == State.REFUNDED and session.state != State.STOPPING_UNCONFIRMED:
                final = State.SETTLED
            await self.repo.update(conn, session.id, state=final, stopped_at=iso(), power_w=0.0,
                                   held_msat=0, stop_reason=session.stop_reason or reason)
            session = await self.repo.get_in(conn, session.id)
        assert session is not None
        log.info("session %s %s: %.0f Wh, %d msat used, %d msat refundable%s", session.id,
                 session.state.value, session.energy_wh, session.consumed_msat,
                 session.refundable_msat,
                 f", {session.unbilled_msat} msat unbilled" if session.unbilled_msat else "")
        self.publish(session)

    async def stop_and_wait(self, session_id: str, reason: str) -> Session:
        """Stop the session and wait for the charger's StopTransaction (`stop_timeout`).

        A stop asked while starting is returned at once, held (`stop_requested`): the charger's
        answer to the start may take until `start_timeout`, longer than a wallet waits.

        A charger that does not confirm in time (or is offline) leaves the session
        `stopping_unconfirmed`:
        the payer can withdraw at once what is surely theirs (all but the worst case since
        the last reading); the rest follows the charger's final reading.
        """
        async with self._bus.listen(SessionChanged) as changes:
            session = await self.request_stop(session_id, reason)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._settings.stop_timeout
            while session.state in (State.CHARGING, State.STOPPING):
                left = deadline - loop.time()
                # An offline charger cannot hear the stop: no reason to keep the payer waiting.
                if left <= 0 or not self._chargers.is_connected(session.cp_id):
                    why = "no StopTransaction in time" if left <= 0 else "the charger is offline"
                    session = await self.unconfirm(session.id, why) or session
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changes.get(), timeout=min(left, 1.0))
                session = await self.repo.get(session_id) or session
            if session.state == State.STOPPING_UNCONFIRMED:
                await self._meter(session.id, energy_register_wh=None)  # a fresh hold
        return await self.repo.get(session_id) or session
