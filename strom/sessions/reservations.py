"""Pay to reserve: a driver pays a fee to hold a connector for some minutes (issue 21).

A reservation is a session whose first invoice is the fee (`[tariff.reservation] fee_msat`):
paid, it is `reserved` on one connector, which no other payer gets (`held_connectors`), and
the charger is asked to hold it for the session's own idTag until `reserved_until`
(`ChargerControl.reserve_now`, OCPP ReserveNow with the session's `reservation_id`). Offered
only where `ChargerControl.reservations_supported` (1.6: `SupportedFeatureProfiles` lists
`Reservation`, or no list at all).

Credited on start: the reserver pays to charge (the top-up link of their session page, or a
zap from the same key) within the time; the session becomes `paid` with the fee in its budget
and starts on the reserved connector (RemoteStart with the reserved idTag). Unused — expired,
or cancelled by the payer (their session token, or their key by DM) — the fee is kept
(ledger kind `reservation_fee`, session → revenue; `settled`) or refundable (`failed`), per
`unused_fee`. The operator's cancel always makes it refundable. Either way the charger is told
(CancelReservation), and a refused ReserveNow fails the session (the fee refundable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from urllib.parse import urlsplit

from strom.chargers.control import ChargerControl, ControlResult, Outcome
from strom.config import Settings
from strom.events import ChargePointBooted, ChargePointConnected, ConnectorStatusChanged, EventBus
from strom.lightning.wallet import WalletError
from strom.lnurl import pay as lud06
from strom.sessions import ledger
from strom.sessions.checkout import (
    ChargerBusy,
    CheckoutRefused,
    Invoiced,
    Offer,
    PaymentsUnavailable,
    Target,
    find_target,
)
from strom.sessions.lifecycle import SessionService
from strom.sessions.model import Session, State
from strom.sessions.payer_stop import NoSession, PayerCapability, PayerKey, SessionToken
from strom.sessions.stopping import SessionError
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.roaming_holds import RoamingHold, RoamingHoldRepository
from strom.tariffs.pricing import TariffService
from strom.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

# A charger's answer about its profiles is believed this long (and until it boots again).
PROFILE_CACHE_SECONDS = 600.0


class ReservationRefused(CheckoutRefused):
    """No reservation here: not offered, not supported by the charger, or no free connector."""


class Reservations:
    """`offer`/`pay` for the reservation's LNURL, `cancel` by the payer, `cancel_by_operator`,
    and the loop that sends reservations to chargers and expires them (`start`/`close`)."""

    def __init__(self, *, db: Database, sessions: SessionService,
                 charge_points: ChargePointRepository,
                 tariffs: TariffService, chargers: ChargerControl, bus: EventBus,
                 settings: Settings) -> None:
        self._db = db
        self._tariffs = tariffs
        self._public = settings
        self._sessions = sessions
        self._charge_points = charge_points
        self._chargers = chargers
        self._bus = bus
        self._settings = settings.tariff.reservation
        self._profiles: dict[str, tuple[float, bool]] = {}  # cp → (when asked, supported)
        # (cp, connector) → until when a paid reservation holds it, for the views (kept with
        # the store: refreshed every round, changed at once when one is held or ends); an
        # eMSP's holds are the sessions' `held_elsewhere`.
        self._held: dict[tuple[str, int], str] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._roaming: dict[str, RoamingHold] = {}  # holder → its hold (and in the store)
        self._roaming_repo = RoamingHoldRepository(db)

    # --- offering and paying -----------------------------------------------------------------

    async def supported(self, cp_id: str) -> bool:
        """True when reservations are offered and the charger has the Reservation profile."""
        return bool(self._settings.fee_msat) and await self.charger_takes_reservations(cp_id)

    async def charger_takes_reservations(self, cp_id: str) -> bool:
        """True when the charger has the Reservation profile (asked, then believed a while)."""
        cached = self._profiles.get(cp_id)
        if cached and time.monotonic() - cached[0] < PROFILE_CACHE_SECONDS:
            return cached[1]
        result = await self._chargers.reservations_supported(cp_id)
        if not result.answered:
            return False  # asked again next time: offline, silent, or a protocol error
        self._profiles[cp_id] = (time.monotonic(), result.ok)
        return result.ok

    def reserved_until(self, cp_id: str, connector_id: int) -> str | None:
        """Until when a reservation holds the connector (ISO time), for the views."""
        return (self._held.get((cp_id, connector_id))
                or self._sessions.held_elsewhere.until(cp_id, connector_id))

    async def offer(self, name: str) -> Offer:
        """The reservation's payRequest: the fee (fixed amount), for a free connector."""
        target = await self._target(name)
        fee = self._settings.fee_msat
        tariff, quote = self._tariffs.quote(target.cp)
        return Offer(target, tariff, quote, self.metadata(target), fee, fee, None)

    async def pay(self, name: str, amount_msat: int, comment: str | None = None,
                  payer_pubkey: str | None = None, described: str | None = None) -> Invoiced:
        """The fee's invoice: a session that, paid, holds a connector; its description is
        the metadata's hash, or `described`'s (a zap request, NIP-57). Raises
        `CheckoutRefused`."""
        target = await self._target(name)
        if amount_msat != self._settings.fee_msat:
            raise ReservationRefused(f"the reservation fee is {self._settings.fee_msat // 1000}"
                                     " sat")
        tariff = self._tariffs.current(target.cp)
        try:
            pending = await self._sessions.create_pending(
                target.cp, target.connector_id, tariff, amount_msat,
                description_hash=lud06.description_hash(described or self.metadata(target)),
                comment=comment,
                payer_pubkey=payer_pubkey, reservation_fee_msat=amount_msat)
        except SessionError as exc:
            raise CheckoutRefused(str(exc)) from None
        except WalletError:
            raise PaymentsUnavailable("payments temporarily unavailable, try again in a "
                                      "minute") from None
        self._wake.set()
        return Invoiced(pending, for_zap=False, topped_up=False)

    async def words(self, name: str) -> str:
        """The offer in words for a page (no price quote made); raises the refusals."""
        return self._words(await self._target(name))

    def metadata(self, target: Target) -> str:
        """The reservation's LUD-06 metadata: what is held, how long, what becomes of the fee."""
        image = self._public.lnurl.image_path
        host = urlsplit(self._public.public_url).netloc
        return lud06.metadata(self._words(target), identifier=f"{target.name}@{host}",
                              image=lud06.load_image(image) if image else None)

    def _words(self, target: Target) -> str:
        fee = self._settings.fee_msat // 1000
        where = f"connector {target.connector_id}" if target.connector_id else "a free connector"
        after = "kept" if self._settings.unused_fee == "kept" else "refunded"
        return (f"Reserve {where} at {target.cp.name} for {self._settings.minutes:g} minutes:"
                f" {fee} sat, part of your charging budget when you pay to charge in time, "
                f"else {after}.")

    async def _target(self, name: str) -> Target:
        target = await find_target(self._charge_points, name)
        if not await self.supported(target.cp.id):
            raise ReservationRefused(f"charger {target.cp.name} takes no reservations")
        choice = await self._sessions.free_connector(target.cp, target.connector_id)
        if choice.connector_id is None:
            raise ChargerBusy(choice.reason)
        return Target(target.cp, choice.connector_id, target.name)

    # --- cancelling --------------------------------------------------------------------------

    async def cancel(self, capability: PayerCapability) -> Session:
        """Cancel the payer's reservation: the fee per `unused_fee`. Raises `NoSession`."""
        session = await self._find(capability)
        ended, _ = await self._end(session, "cancelled by the driver",
                                   refund=self._settings.unused_fee == "refunded")
        return ended

    async def cancel_by_operator(self, cp_id: str, connector_id: int) -> ControlResult:
        """Cancel the reservation holding a connector, the fee refundable; the charger's
        answer to CancelReservation (REJECTED when no paid reservation holds it)."""
        reserved = await self._sessions.list(cp_id=cp_id, state=State.RESERVED, limit=50)
        session = next((s for s in reserved if s.active_connector_id == connector_id), None)
        if session is None:
            return ControlResult(Outcome.REJECTED, reason=f"no paid reservation holds connector"
                                 f" {connector_id} of {cp_id}")
        _, result = await self._end(session, "cancelled by the operator", refund=True)
        return result

    async def _find(self, capability: PayerCapability) -> Session:
        match capability:
            case SessionToken(token, cp_id):
                session = await self._sessions.by_token(token)
                if session is not None and session.state == State.RESERVED and \
                        (cp_id is None or session.cp_id == cp_id):
                    return session
            case PayerKey(cp_id, pubkey):
                mine = await self._sessions.list(cp_id=cp_id, payer_pubkey=pubkey,
                                                 state=State.RESERVED, limit=5)
                if mine:
                    return mine[0]
        raise NoSession("You hold no reservation here. Only its payer can cancel it.")

    async def _end(self, session: Session, why: str, *,
                   refund: bool) -> tuple[Session, ControlResult]:
        """End a reservation unused: tell the charger, then keep or free the fee."""
        result = ControlResult(Outcome.ACCEPTED, reason="not yet held by the charger")
        if session.active_connector_id is not None:
            self._held.pop((session.cp_id, session.active_connector_id), None)
        if session.reserved_until is not None and session.reservation_id is not None:
            result = await self._chargers.cancel_reservation(session.cp_id,
                                                             session.reservation_id)
            if not result.ok:  # it expires on the charger at its own expiry anyway
                log.info("session %s: CancelReservation: %s", session.id,
                         result.reason or result.status)
        async with self._db.transaction() as conn:
            repo = self._sessions.repo
            current = await repo.get_in(conn, session.id)
            if current is None or current.state != State.RESERVED:
                return current or session, result  # started, or ended meanwhile
            if refund:
                await repo.update(conn, session.id, expect_state=State.RESERVED,
                                  state=State.FAILED, stopped_at=iso(),
                                  failure_reason=f"reservation {why}: the fee is refundable")
            else:
                fee = min(current.reservation_fee_msat, current.refundable_msat)
                await repo.update(conn, session.id, expect_state=State.RESERVED,
                                  state=State.SETTLED, stopped_at=iso(),
                                  consumed_msat=current.consumed_msat + fee,
                                  stop_reason=f"reservation {why}: the fee is kept")
                await ledger.reservation_fee(conn, session.id, fee)
            ended = await repo.get_in(conn, session.id)
        assert ended is not None
        log.info("session %s: reservation %s (%s)", session.id, why, ended.state.value)
        self._sessions.publish(ended)
        return ended, result

    # --- reservations billed elsewhere (an eMSP's) -----------------------------------------

    async def hold_roaming(self, hold: RoamingHold) -> ControlResult:
        """Hold a connector for a reservation that is no session (no fee: its holder is billed
        for the charging, postpaid). Refused like a payer's: a connector a session or another
        reservation holds is REJECTED; the same `holder` again replaces its earlier one."""
        if not await self.charger_takes_reservations(hold.cp_id):
            return ControlResult(Outcome.NOT_SUPPORTED,
                                 reason=f"charger {hold.cp_id} takes no reservations")
        earlier = self._roaming.get(hold.holder)
        where = (hold.cp_id, hold.connector_id)
        if earlier is not None:
            await self._drop(earlier)
            if (earlier.cp_id, earlier.connector_id) == where:
                hold.reservation_id = earlier.reservation_id  # ReserveNow replaces it
            else:
                await self._chargers.cancel_reservation(earlier.cp_id, earlier.reservation_id)
        if hold.reservation_id != getattr(earlier, "reservation_id", None):  # a new one
            choice = await self._sessions.free_connector(
                await self._charge_points.get(hold.cp_id), hold.connector_id)
            if choice.connector_id is None:
                return ControlResult(Outcome.REJECTED, reason=choice.reason)
        # Held before the charger answers, so that no payer takes it meanwhile.
        self._sessions.held_elsewhere.hold(*where, iso(hold.until))
        self._roaming[hold.holder] = hold
        await self._roaming_repo.put(hold)
        result = await self._chargers.reserve_now(
            hold.cp_id, hold.connector_id, expiry=hold.until, id_tag=hold.id_tag,
            reservation_id=hold.reservation_id)
        if not result.ok:
            await self._drop(hold)
        log.info("%s: reservation of %s/%d %s", hold.holder, hold.cp_id, hold.connector_id,
                 "held" if result.ok else f"refused: {result.status or result.reason}")
        return result

    def roaming_hold(self, holder: str) -> RoamingHold | None:
        """The holder's reservation while it holds its connector."""
        hold = self._roaming.get(holder)
        return hold if hold is not None and hold.until > utcnow() else None

    def roaming_holds(self, cp_id: str, connector_id: int) -> list[RoamingHold]:
        """The reservations billed elsewhere that hold this connector now."""
        return [h for h in self._roaming.values()
                if (h.cp_id, h.connector_id) == (cp_id, connector_id) and h.until > utcnow()]

    async def use_roaming(self, holder: str) -> None:
        """The holder starts charging on its reservation: the charger ends it itself."""
        hold = self._roaming.get(holder)
        if hold is not None:
            await self._drop(hold)

    async def cancel_roaming(self, holder: str) -> ControlResult | None:
        """The holder cancels: the charger is told (None: the holder holds nothing)."""
        hold = self._roaming.get(holder)
        if hold is None:
            return None
        await self._drop(hold)
        return await self._chargers.cancel_reservation(hold.cp_id, hold.reservation_id)

    async def _drop(self, hold: RoamingHold) -> None:
        self._roaming.pop(hold.holder, None)
        await self._roaming_repo.delete(hold.holder)
        self._sessions.held_elsewhere.release(hold.cp_id, hold.connector_id)

    # --- holding and expiring ------------------------------------------------------------------

    async def start(self) -> None:
        """Send and expire reservations from now on (also those a restart interrupted)."""
        self._bus.subscribe(self._on_event, ConnectorStatusChanged, ChargePointConnected,
                            ChargePointBooted)
        for hold in await self._roaming_repo.all():  # expired ones go in the first round
            self._roaming[hold.holder] = hold
            self._sessions.held_elsewhere.hold(hold.cp_id, hold.connector_id, iso(hold.until))
        self._task = asyncio.create_task(self._run(), name="reservations")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _on_event(self, event: object) -> None:
        if isinstance(event, ChargePointBooted):
            self._profiles.pop(event.cp_id, None)  # new firmware may bring other profiles
        self._wake.set()  # a reserved connector turning Available may mean it expired

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.check_interval_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.check_once()
            except Exception:  # the next round tries again
                log.exception("reservations: a round failed")

    async def check_once(self) -> None:
        """Send ReserveNow for reservations not yet held, expire those whose time is up."""
        reserved = await self._sessions.repo.in_states(State.RESERVED)
        self._held = {(s.cp_id, s.active_connector_id): s.reserved_until for s in reserved
                      if s.reserved_until and s.active_connector_id}
        for hold in list(self._roaming.values()):
            if hold.until <= utcnow():  # the charger lets it go at its own expiry
                log.info("%s: reservation of %s/%d expired", hold.holder, hold.cp_id,
                         hold.connector_id)
                await self._drop(hold)
        for session in reserved:
            if session.reserved_until is None:
                await self._hold(session)
            elif parse_iso(session.reserved_until) <= utcnow():
                await self._end(session, "expired",
                                refund=self._settings.unused_fee == "refunded")

    async def _hold(self, session: Session) -> None:
        """ReserveNow until the fee's minutes are over; a refusal makes the fee refundable.
        The same `reservation_id` again after a crash replaces, never doubles, the charger's."""
        assert session.active_connector_id is not None and session.reservation_id is not None
        until = parse_iso(session.paid_at or iso()) + timedelta(minutes=self._settings.minutes)
        # Known before the charger's StatusNotification Reserved makes the views show it.
        where = (session.cp_id, session.active_connector_id)
        self._held[where] = iso(until)
        result = await self._chargers.reserve_now(
            session.cp_id, session.active_connector_id, expiry=until, id_tag=session.id_tag,
            reservation_id=session.reservation_id)
        async with self._db.transaction() as conn:
            if result.ok:
                await self._sessions.repo.update(conn, session.id, expect_state=State.RESERVED,
                                                 reserved_until=iso(until))
            else:
                self._held.pop(where, None)
                await self._sessions.repo.update(
                    conn, session.id, expect_state=State.RESERVED, state=State.FAILED,
                    stopped_at=iso(), failure_reason=f"the charger did not take the reservation:"
                    f" {result.status or result.reason}; the fee is refundable")
            held = await self._sessions.repo.get_in(conn, session.id)
        if held is not None:
            log.info("session %s: reservation %s", session.id,
                     f"held until {held.reserved_until}" if result.ok else "refused")
            self._sessions.publish(held)
