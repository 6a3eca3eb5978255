"""Roaming sessions: an eMSP's START_SESSION starts the charger for one of its customers;
the energy is billed to the eMSP (postpaid) in the roaming book, at the charger's tariff when
the command came; the Session is pushed while it charges and the CDR when it ends.

They are their own kind, like the owner's card sessions: no invoice is paid for them, so they
are not rows of `sessions`, and `strom ledger check` proves their costs equal their book and
that none claims a lightning session's transaction.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from strom.bounded import Bounded
from strom.chargers.control import ControlDispatcher, ControlResult
from strom.config import OcpiSettings
from strom.events import (
    EventBus,
    MeterSample,
    TransactionStarted,
    TransactionStopped,
    of_transactions,
)
from strom.ocpi.currency import Conversion
from strom.ocpi.sessions import cdr_object, session_object
from strom.ocpi.token_list import TokenList
from strom.store.charge_points import ChargePointRepository, ChargerRecord
from strom.store.ocpi import RoamingRepository, RoamingSession
from strom.tariffs.model import Tariff, cost_msat
from strom.tasks import Tasks
from strom.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

ID_TAG_PREFIX = "OCPI"  # + 16 hex: 20 characters, OCPP 1.6's CiString20


def _new_session(party: int, id_tag: str, token: dict[str, Any], reference: str | None,
                 cp_id: str, connector_id: int, tariff: Tariff) -> RoamingSession:
    """A pending roaming session, nothing charged yet, at `tariff`."""
    now = iso()
    return RoamingSession(
        id=str(uuid.uuid4()), party=party, id_tag=id_tag, token=token,
        authorization_reference=reference, cp_id=cp_id, connector_id=connector_id,
        transaction_id=None, state="pending", tariff=tariff.to_json(), meter_start_wh=0.0,
        energy_wh=0.0, cost_msat=0, started_at=now, stopped_at=None, stop_reason=None,
        updated_at=now)


class RoamingCharging:
    """Starts, bills, stops and reports roaming sessions; one per server."""

    def __init__(self, *, repo: RoamingRepository, bus: EventBus, chargers: ControlDispatcher,
                 charge_points: ChargePointRepository, settings: OcpiSettings,
                 tokens: TokenList, tariff_of: Callable[[ChargerRecord], Tariff],
                 money: Callable[[], Conversion], start_timeout: float,
                 report: Callable[[RoamingSession, str, dict[str, Any]], None]) -> None:
        """`report(session, module, object)`: push a Session ("sessions") or a CDR ("cdrs")
        to the session's eMSP; `money()`: how amounts are published now (BTC, or EUR at a
        fresh rate)."""
        self._repo = repo
        self._bus = bus
        self._chargers = chargers
        self._charge_points = charge_points
        self._settings = settings
        self._report = report
        self._tokens = tokens
        self._tariff_of = tariff_of
        self._money = money
        self._start_timeout = start_timeout
        self._tasks = Tasks()
        self._open: set[int] = set()
        # (charger, idTag upper-cased) → (party, authorization_reference) of an eMSP's token
        # accepted at that charger: its StartTransaction opens a roaming session.
        self._accepted: Bounded[tuple[str, str], tuple[int, str | None]] = Bounded()

    async def start(self) -> None:
        self._bus.subscribe(self._on_event, TransactionStarted, MeterSample, TransactionStopped,
                            durable=True, when=of_transactions)
        self._open = await self._repo.open_transactions()

    async def close(self) -> None:
        await self._tasks.close()

    async def get(self, session_id: str) -> RoamingSession | None:
        return await self._repo.get(session_id)

    async def of_party(self, party: int) -> list[RoamingSession]:
        return await self._repo.of_party(party)

    async def authorize(self, cp_id: str, connector_id: int | None, id_tag: str) -> str | None:
        """Accepted for the idTag of a roaming session strom is starting, or an eMSP's token
        its list (or the eMSP, in real time) allows; None for any other tag."""
        session = await self._repo.by_tag(id_tag) if id_tag.startswith(ID_TAG_PREFIX) else None
        if session is None:
            decided = await self._tokens.authorize(cp_id, id_tag)
            if decided is None:
                return None
            status, party, reference = decided
            if status == "Accepted":
                # An Authorize without a start is forgotten once 10 000 newer ones came.
                self._accepted[(cp_id, id_tag.upper())] = (party, reference)
            return status
        return "Accepted" if session.cp_id == cp_id and session.state in (
            "pending", "active") else "Invalid"

    # --- commands -------------------------------------------------------------------------

    async def begin(self, party: int, cp: ChargerRecord, connector_id: int, tariff: Tariff,
                    token: dict[str, Any], authorization_reference: str | None,
                    id_tag: str | None = None) -> tuple[RoamingSession, ControlResult]:
        """START_SESSION: a pending session, then RemoteStart with its own idTag (or the
        idTag its reservation holds the connector for)."""
        session = _new_session(party, id_tag or ID_TAG_PREFIX + secrets.token_hex(8), token,
                               authorization_reference, cp.id, connector_id, tariff)
        await self._repo.create(session)
        result = await self._chargers.start(cp.id, connector_id, session.id_tag)
        if not result.ok:
            await self._repo.set_state(session.id, "invalid", f"start: {result.outcome.value}")
        else:
            self._tasks.spawn(self._expire(session.id), f"ocpi-start-{session.id}")
        return session, result

    async def _expire(self, session_id: str) -> None:
        """A start the charger accepted but never began (no car, a driver who walked away)
        is INVALID after `[sessions] start_timeout`; a later StartTransaction is still
        accounted."""
        await asyncio.sleep(self._start_timeout)
        session = await self._repo.get(session_id)
        if session is not None and session.state == "pending":
            await self._repo.set_state(session_id, "invalid", "the charger never started")
            expired = await self._repo.get(session_id)
            assert expired is not None
            self._report(expired, "sessions",
                         session_object(expired, self._settings, self._money()))

    async def end(self, session: RoamingSession) -> ControlResult | None:
        """STOP_SESSION: RemoteStop of its transaction (None: it has none running)."""
        if session.state != "active" or session.transaction_id is None:
            return None
        return await self._chargers.stop(session.cp_id, session.transaction_id)

    # --- OCPP facts -------------------------------------------------------------------------

    async def _on_event(self, event: object) -> None:
        match event:
            case TransactionStarted() if event.id_tag.startswith(ID_TAG_PREFIX):
                await self._started(event)
            case TransactionStarted() if (event.cp_id, event.id_tag.upper()) in self._accepted:
                await self._started_by_token(event)
            case MeterSample() if event.transaction_id in self._open:
                assert event.transaction_id is not None
                await self._bill(event.transaction_id, event.energy_wh, final=None)
            case TransactionStopped() if event.transaction_id in self._open:
                await self._bill(event.transaction_id, event.meter_stop_wh, final=event)

    async def _started(self, event: TransactionStarted) -> None:
        session = await self._repo.pending_by_tag(event.id_tag)
        if session is None or session.state not in ("pending", "invalid"):
            return  # a late start of an invalid one is still accounted and reported
        await self._activate(session, event)

    async def _activate(self, session: RoamingSession, event: TransactionStarted) -> None:
        """The session has the charger's transaction: active, billed from its start reading."""
        async with self._repo.db.transaction() as conn:
            await self._repo.update(conn, session.id, state="active",
                                    transaction_id=event.transaction_id,
                                    meter_start_wh=event.meter_start_wh,
                                    started_at=iso(min(event.timestamp, utcnow())))
        self._open.add(event.transaction_id)
        log.info("roaming session %s started transaction %d on %s/%d", session.id,
                 event.transaction_id, event.cp_id, event.connector_id)
        await self._bill(event.transaction_id, None, final=None)

    async def _started_by_token(self, event: TransactionStarted) -> None:
        """A driver's RFID card of an eMSP started the charger: a roaming session, already
        active, billed to that eMSP."""
        party, reference = self._accepted.pop((event.cp_id, event.id_tag.upper()))
        token = await self._tokens.record(event.id_tag)
        cp = await self._charge_points.get(event.cp_id)
        tariff = self._tariff_of(cp) if cp else Tariff(price_msat_per_kwh=0)
        session = _new_session(party, event.id_tag,
                               token or {"uid": event.id_tag, "type": "RFID"}, reference,
                               event.cp_id, event.connector_id, tariff)
        await self._repo.create(session)
        await self._activate(session, event)

    async def _bill(self, transaction_id: int, register_wh: float | None,
                    final: TransactionStopped | None) -> None:
        """Bill up to this reading in the roaming book; at the stop, complete and send the CDR."""
        async with self._repo.db.transaction() as conn:
            session = await self._repo.in_conn(conn, transaction_id)
            if session is None or session.state != "active":
                return
            energy = session.energy_wh
            if register_wh is not None:
                energy = max(energy, register_wh - session.meter_start_wh)
            end = min(final.timestamp, utcnow()) if final else utcnow()
            minutes = (end - parse_iso(session.started_at)) / timedelta(minutes=1)
            owed = max(session.cost_msat, cost_msat(Tariff.from_json(session.tariff), energy,
                                                    max(minutes, 0.0)))
            await self._repo.book(conn, session, owed - session.cost_msat)
            fields: dict[str, Any] = {"energy_wh": energy, "cost_msat": owed}
            money = self._money()
            if final is not None:
                # The CDR's conversion is fixed now: every pull of it shows the same amount.
                fields.update(state="completed", stopped_at=iso(end), stop_reason=final.reason,
                              eur_per_btc=money.eur_per_btc, rate_at=money.rate_at)
            updated_at = await self._repo.update(conn, session.id, **fields)
        # What was just written, without reading it back (this runs per meter sample).
        session = replace(session, **fields, updated_at=updated_at)
        self._report(session, "sessions", session_object(session, self._settings, money))
        if final is not None:
            self._open.discard(transaction_id)
            cp = await self._charge_points.get(session.cp_id)
            self._report(session, "cdrs", cdr_object(session, cp, self._settings))
            log.info("roaming session %s completed: %.0f Wh, %d msat owed by party %d",
                     session.id, session.energy_wh, session.cost_msat, session.party)
