"""The OCPI CPO service (`Services.ocpi`): parties, what strom publishes (Locations, Tariffs)
and what it pushes (EVSE status), and the commands eMSPs send. The HTTP side is
`strom/web/ocpi.py`, which only translates."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from strom.chargers.control import ControlDispatcher, ControlResult, Outcome
from strom.config import Settings
from strom.events import ChargePointDisconnected, ConnectorStatusChanged, EventBus
from strom.ocpi.currency import Currency
from strom.ocpi.envelope import UNKNOWN_LOCATION, OcpiError
from strom.ocpi.locations import evse_status, evse_uid, last_updated, location, parse_evse_uid
from strom.ocpi.parties import Caller, PartyService, endpoint
from strom.ocpi.push import Push, Pushes
from strom.ocpi.reservations import RoamingReservations, checked_reference, checked_token
from strom.ocpi.roaming import RoamingCharging
from strom.ocpi.sessions import cdr_object, session_object
from strom.ocpi.tariffs import ocpi_tariff
from strom.ocpi.token_list import TokenList
from strom.ocpp.charge_point import Authorizer
from strom.outbound import Outbound
from strom.sessions.reservations import Reservations
from strom.store.charge_points import ChargePointRepository, ChargerRecord
from strom.store.db import Database
from strom.store.ocpi import (
    OcpiPartyRepository,
    PartyRecord,
    RoamingRepository,
    RoamingSession,
    TokenRepository,
)
from strom.tariffs.pricing import TariffService
from strom.tasks import Tasks
from strom.timeutil import iso

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30  # seconds an eMSP is told to wait for a command's result
# How long EVSE status changes gather before the registered eMSPs are read for their pushes
# (one read per batch: a boot storm's statuses cost one, not one each).
STATUS_WINDOW = 0.1

# ControlResult.outcome → OCPI CommandResultType.
_RESULT = {Outcome.ACCEPTED: "ACCEPTED", Outcome.SCHEDULED: "ACCEPTED",
           Outcome.REJECTED: "REJECTED", Outcome.NOT_SUPPORTED: "NOT_SUPPORTED",
           Outcome.NOT_CONNECTED: "FAILED", Outcome.TIMEOUT: "TIMEOUT", Outcome.ERROR: "FAILED",
           Outcome.NOT_SENT: "FAILED"}


class OcpiService:
    def __init__(self, *, db: Database, bus: EventBus, settings: Settings, outbound: Outbound,
                 charge_points: ChargePointRepository, tariffs: TariffService,
                 chargers: ControlDispatcher) -> None:
        self.settings = settings.ocpi
        self.parties = PartyService(OcpiPartyRepository(db), settings, outbound)
        self.pushes = Pushes(outbound, settings.ocpi,
                             backoff_seconds=settings.ocpi.push_backoff_seconds)
        self._bus = bus
        self._charge_points = charge_points
        self._tariffs = tariffs
        self._chargers = chargers
        self._tasks = Tasks()
        self.tokens = TokenList(TokenRepository(db), self.parties, outbound)
        self.currency = Currency(settings.ocpi, tariffs.btc_rate)
        self.roaming = RoamingCharging(
            repo=RoamingRepository(db), bus=bus, chargers=chargers, charge_points=charge_points,
            settings=settings.ocpi, tokens=self.tokens, tariff_of=tariffs.current,
            money=self.currency.now,
            start_timeout=settings.sessions.start_timeout, report=self._report)
        self.reservations: RoamingReservations | None = None  # until `use_reservations`

    def use_reservations(self, core: Reservations) -> None:
        """RESERVE_NOW holds connectors through strom's reservations core (built later)."""
        self.reservations = RoamingReservations(core)

    async def start(self) -> None:
        self._bus.subscribe_batches(self._on_statuses, ConnectorStatusChanged,
                                    ChargePointDisconnected, window=STATUS_WINDOW)
        await self.roaming.start()

    async def authorize(self, cp_id: str, connector_id: int | None, id_tag: str) -> str | None:
        """OCPP Authorize / StartTransaction of a roaming session's idTag (None: not one)."""
        return await self.roaming.authorize(cp_id, connector_id, id_tag)

    async def close(self) -> None:
        await self._tasks.close()
        await self.roaming.close()
        await self.pushes.close()

    # --- credentials --------------------------------------------------------------------

    async def unregister(self, caller: Caller) -> None:
        """The eMSP's credentials DELETE: as the operator's removal."""
        await self.remove_party(caller.party.id)

    async def remove_party(self, party_id: int) -> bool:
        """The operator ends a party: its tokens stop working, nothing more is pushed."""
        removed = await self.parties.remove(party_id)
        self.pushes.forget(party_id)  # after: a push queued while the store changed goes too
        return removed

    # --- Locations and Tariffs (the eMSP pulls) ------------------------------------------

    async def locations(self) -> list[dict[str, Any]]:
        return [location(cp, self.settings) for cp in await self._charge_points.list()]

    async def location(self, cp_id: str) -> dict[str, Any]:
        cp = await self._charge_points.get(cp_id)
        if cp is None:
            raise OcpiError(UNKNOWN_LOCATION, f"unknown location {cp_id}", 404)
        return location(cp, self.settings)

    async def tariffs(self) -> list[dict[str, Any]]:
        return [self._tariff(cp) for cp in await self._charge_points.list()]

    def _tariff(self, cp: ChargerRecord) -> dict[str, Any]:
        current = self._tariffs.current(cp)
        slots = self._tariffs.schedule(cp)
        money = self.currency.now()
        updated = iso() if current.source == "dynamic" else cp.created_at
        # In EUR a static price changes with the rate: it was last updated when the rate came.
        return ocpi_tariff(cp.id, current, slots, self.settings,
                           last_updated=max(updated, money.rate_at or ""), money=money)

    async def sessions_of(self, caller: Caller) -> list[dict[str, Any]]:
        """The caller's roaming sessions as OCPI Sessions (the eMSP pulls)."""
        return [session_object(s, self.settings, self.currency.now())
                for s in await self.roaming.of_party(caller.party.id)]

    async def cdrs_of(self, caller: Caller) -> list[dict[str, Any]]:
        """The CDRs of the caller's completed roaming sessions."""
        completed = [s for s in await self.roaming.of_party(caller.party.id)
                     if s.state == "completed"]
        chargers = {cp_id: await self._charge_points.get(cp_id)
                    for cp_id in {s.cp_id for s in completed}}  # each read once, not per CDR
        return [cdr_object(s, chargers[s.cp_id], self.settings) for s in completed]

    # --- pushes ------------------------------------------------------------------------

    async def _on_statuses(self, events: list[ConnectorStatusChanged | ChargePointDisconnected]
                           ) -> None:
        """PATCH each EVSE's new status to every registered eMSP that receives Locations (a
        charger that went away: UNKNOWN for each of its EVSEs), in the order they came."""
        parties = await self.parties.registered()
        if not parties:
            return
        chargers: dict[str, ChargerRecord | None] = {}
        for event in events:
            if event.cp_id not in chargers:
                chargers[event.cp_id] = await self._charge_points.get(event.cp_id)
            cp = chargers[event.cp_id]
            if cp is not None:
                self._push_status(parties, cp, event)

    def _push_status(self, parties: list[PartyRecord], cp: ChargerRecord,
                     event: ConnectorStatusChanged | ChargePointDisconnected) -> None:
        gone = isinstance(event, ChargePointDisconnected)
        whole = range(1, cp.num_connectors + 1)
        numbers = [event.connector_id] if isinstance(event, ConnectorStatusChanged) \
            and event.connector_id != 0 else whole
        for party in parties:
            base = endpoint(party, "locations", "RECEIVER")
            if base is None:
                continue
            for number in numbers:
                url = (f"{base.rstrip('/')}/{self.settings.country_code}/"
                       f"{self.settings.party_id}/{cp.id}/{evse_uid(cp.id, number)}")
                status = "UNKNOWN" if gone else evse_status(cp, number)
                self.pushes.send(party, Push("PATCH", url, {
                    "status": status, "last_updated": iso() if gone else last_updated(cp)}))

    def _report(self, session: RoamingSession, module: str, body: dict[str, Any]) -> None:
        self._tasks.spawn(self._push_to_party(session, module, body), f"ocpi-{module}-push")

    async def _push_to_party(self, session: RoamingSession, module: str,
                             body: dict[str, Any]) -> None:
        """A Session (PUT, 2.2.1 part 9.2.2) or a CDR (POST) to the session's eMSP."""
        party = await self.parties.get(session.party)
        if party is None or party.state != "registered":
            return
        base = endpoint(party, module, "RECEIVER")
        if base is None:
            return
        if module == "sessions":
            url = f"{base.rstrip('/')}/{self.settings.country_code}/{self.settings.party_id}/" \
                  f"{session.id}"
            self.pushes.send(party, Push("PUT", url, body))
        else:
            self.pushes.send(party, Push("POST", base, body))

    # --- commands ----------------------------------------------------------------------

    async def start_session(self, caller: Caller, body: dict[str, Any],
                            response_url: str) -> bool:
        """START_SESSION: checked now (location, EVSE, token), started in a task; False when
        the EVSE is not available (charging, reserved for another, out of order, offline).
        The same party's reservation for the same token on the EVSE is used."""
        kept = checked_token(body)
        reference = checked_reference(body)
        cp, connector = await self._evse(body)
        blocked, hold = self.reservations.blocks(caller.party.id, cp.id, connector, kept) \
            if self.reservations else (False, None)
        if blocked or (hold is None and evse_status(cp, connector) != "AVAILABLE"):
            return False
        tariff = self._tariffs.current(cp)

        async def run() -> ControlResult:
            _, result = await self.roaming.begin(
                caller.party.id, cp, connector, tariff, kept,
                reference or (hold.about["authorization_reference"] if hold else None),
                id_tag=hold.id_tag if hold else None)
            if hold is not None and result.ok and self.reservations:
                await self.reservations.use(hold)  # the charger ends it at the StartTransaction
            return result

        self._run_command(caller, response_url, run())
        return True

    async def stop_session(self, caller: Caller, body: dict[str, Any],
                           response_url: str) -> bool:
        """STOP_SESSION of one of the caller's sessions; False: no such running session."""
        session_id = body.get("session_id")
        session = await self.roaming.get(session_id) if isinstance(session_id, str) else None
        if session is None or session.party != caller.party.id or session.state != "active":
            return False

        async def run() -> ControlResult:
            result = await self.roaming.end(session)
            return result if result is not None else ControlResult(
                Outcome.REJECTED, reason="the session is not running")

        self._run_command(caller, response_url, run())
        return True

    async def reserve_now(self, caller: Caller, body: dict[str, Any],
                          response_url: str) -> bool:
        """RESERVE_NOW: checked now (EVSE, token, id, expiry), held in a task, the result
        POSTed; False: the charger takes no reservations (NOT_SUPPORTED)."""
        cp, connector = await self._evse(body)
        if self.reservations is None:
            return False
        hold = self.reservations.prepare(caller.party.id, body, cp, connector)
        if not await self.reservations.supported(cp.id):
            return False
        self._run_command(caller, response_url, self.reservations.reserve(hold))
        return True

    async def cancel_reservation(self, caller: Caller, body: dict[str, Any],
                                 response_url: str) -> bool:
        """CANCEL_RESERVATION of one of the caller's reservations; False: it holds none by
        that id (another party's id names nothing)."""
        name = self.reservations.known(caller.party.id, body) if self.reservations else None
        if name is None or self.reservations is None:
            return False
        self._run_command(caller, response_url, self.reservations.cancel(name))
        return True

    async def unlock(self, caller: Caller, body: dict[str, Any], response_url: str) -> None:
        """UNLOCK_CONNECTOR: checked now, sent to the charger in a task, result POSTed."""
        cp, connector = await self._evse(body)
        self._run_command(caller, response_url, self._chargers.unlock(cp.id, connector))

    async def _evse(self, body: dict[str, Any]) -> tuple[ChargerRecord, int]:
        """The charger and connector an EVSE uid of a Location names (2003 when none)."""
        cp = await self._charge_points.get(str(body.get("location_id", "")))
        parsed = parse_evse_uid(str(body.get("evse_uid", "")))
        if cp is None or parsed is None or parsed[0] != cp.id \
                or not 1 <= parsed[1] <= cp.num_connectors:
            raise OcpiError(UNKNOWN_LOCATION, "unknown location or EVSE", 404)
        return cp, parsed[1]

    async def _command_result(self, caller: Caller, response_url: str,
                              call: Awaitable[ControlResult]) -> None:
        result = await call
        body: dict[str, Any] = {"result": _RESULT[result.outcome]}
        if result.reason:
            body["message"] = [{"language": "en", "text": result.reason[:512]}]  # DisplayText *
        self.pushes.send(caller.party, Push("POST", response_url, body))

    def _run_command(self, caller: Caller, response_url: str, call: Awaitable[ControlResult]) -> None:
        """Run a command in a task; its result is POSTed to the eMSP's `response_url`."""
        self._tasks.spawn(self._command_result(caller, response_url, call), "ocpi-command")


class RoamingBeside:
    """The OCPP authorizer with roaming sessions: strom's own answer (lightning sessions,
    cards) first, then a roaming session's idTag."""

    def __init__(self, inner: Authorizer | None, ocpi: OcpiService) -> None:
        self._inner = inner
        self._ocpi = ocpi

    async def authorize(self, cp_id: str, connector_id: int | None, id_tag: str) -> str:
        status = "Invalid" if self._inner is None else \
            await self._inner.authorize(cp_id, connector_id, id_tag)
        if status != "Invalid":
            return status
        return await self._ocpi.authorize(cp_id, connector_id, id_tag) or status
