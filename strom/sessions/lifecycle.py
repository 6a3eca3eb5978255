"""The session service: one state machine from payment to charging to stop.

Every transition is written (with its ledger entries) in one store transaction before strom
acts on it, and facts arrive as bus events, so a crash at any point leaves a state that
`recover()` continues from; a paid invoice or paid session nobody acted on (an event lost, a
handler that failed) is found in the store within seconds by `reconcile()`. Actions on the charger (RemoteStart/RemoteStop) run as tasks of
their own: the event handlers only decide and persist. The allowed transitions are the table
in `strom/sessions/states.py`; the repository refuses any other.

A session is settled on evidence: a stop the charger has not confirmed holds back the worst
case it may still deliver (`holds.py`), RemoteStop is repeated until the charger confirms, and
a charger that shows a stopped session still charging (late StartTransaction, MeterValues,
StatusNotification) is billed for what is left and stopped again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from strom.chargers.control import ChargerControl, Trigger
from strom.config import SessionSettings
from strom.events import (
    ChargePointBooted,
    ChargePointConnected,
    ConnectorStatusChanged,
    EventBus,
    InvoicePaid,
    MeterSample,
    SessionChanged,
    TransactionStarted,
    TransactionStopped,
)
from strom.failpoints import crash_point
from strom.lightning.wallet import InvoiceState, Wallet, WalletError
from strom.sessions import holds, ledger
from strom.sessions.connectors import ConnectorChoice, choose_connector
from strom.sessions.expiry import UnpaidPurger
from strom.sessions.model import ENDED_STATES, METERED_STATES, Session, State
from strom.sessions.queries import SessionQueries
from strom.sessions.repository import SessionRepository
from strom.sessions.stopping import SessionError, StopFlow
from strom.store.charge_points import ChargePointRepository, ChargerRecord
from strom.store.db import Database
from strom.tariffs.model import Rating, Tariff, cost_under_lock
from strom.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

TICK_SECONDS = 15.0
# The meter interval a charger is expected to keep when strom leaves its own setting.
DEFAULT_METER_INTERVAL = 60.0
# An invoice cut short to its price quote's end stays payable at least this long: a wallet
# needs a moment, and the exposure past a slot's end stays this small.
MIN_INVOICE_SECONDS = 30
# A hold covers the worst case until the next tick refreshes it, with room to spare.
HOLD_HORIZON_SECONDS = 2 * TICK_SECONDS


@dataclass(frozen=True, slots=True)
class PendingPayment:
    session: Session
    bolt11: str
    payment_hash: str
    preimage: str | None = None


class SessionService(SessionQueries, StopFlow):
    """Creates sessions, follows them through OCPP and money events, and stops them in time."""

    def __init__(self, *, db: Database, bus: EventBus, settings: SessionSettings,
                 charge_points: ChargePointRepository, wallet: Wallet,
                 chargers: ChargerControl, invoice_expiry: int = 600,
                 tick_seconds: float = TICK_SECONDS,
                 meter_interval: float = DEFAULT_METER_INTERVAL,
                 power_cap: Callable[[str, int], float | None] | None = None) -> None:
        """`meter_interval`: the most seconds between a charger's readings strom expects (what
        it asks chargers for at boot, `[ocpp] meter_sample_interval`). `power_cap`: the limit a
        charger accepted for a connector (site power), which bounds a session's worst case."""
        self._db = db
        self._bus = bus
        self._settings = settings
        self._charge_points = charge_points
        self._wallet = wallet
        self._chargers = chargers
        self._invoice_expiry = invoice_expiry
        self.repo = SessionRepository(db)
        self.purger = UnpaidPurger(db=db, repo=self.repo, wallet=wallet, on_paid=self.on_paid,
                                   invoice_expiry=invoice_expiry,
                                   grace_seconds=settings.unpaid_grace_seconds)
        self._tick_seconds = tick_seconds
        self._meter_interval = meter_interval
        self._power_cap = power_cap
        self._tasks: set[asyncio.Task[None]] = set()
        self._starters: set[str] = set()  # paid sessions with a start task running
        # (charger, connector) → until when a reservation that is no session holds it (an
        # eMSP's, `Reservations.hold_roaming`): no payer may take it meanwhile.
        self.held_elsewhere: dict[tuple[str, int], str] = {}
        self._stoppers: set[str] = set()  # sessions with a RemoteStop loop running
        self._settling: set[str] = set()  # unconfirmed sessions whose connector says ended
        self._woken: dict[str, asyncio.Event] = {}  # per charger: it just (re)connected
        self._watchdog: dict[str, float] = {}  # session → loop time of its TriggerMessage

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the facts sessions follow, then continue whatever a crash interrupted."""
        self._bus.subscribe(self._on_event, InvoicePaid, TransactionStarted, MeterSample,
                            TransactionStopped, ConnectorStatusChanged, ChargePointConnected,
                            ChargePointBooted, durable=True)
        await self.recover()
        self._spawn(self._tick(), "sessions:tick")
        self._spawn(self._reconcile_forever(self._settings.reconcile_interval_seconds),
                    "sessions:reconcile")
        self._spawn(self.purger.run(self._settings.purge_interval_seconds), "sessions:purge")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_event(self, event: object) -> None:
        match event:
            case InvoicePaid():
                await self.on_paid(event.payment_hash, event.amount_msat)
            case TransactionStarted():
                await self.on_transaction_started(event)
            case MeterSample():
                await self.on_meter(event)
            case TransactionStopped():
                await self.on_transaction_stopped(event.cp_id, event.transaction_id,
                                                  event.meter_stop_wh, event.reason)
            case ConnectorStatusChanged():
                self._wake(event.cp_id)
                await self.on_connector_status(event.cp_id, event.connector_id, event.status)
            case ChargePointConnected() | ChargePointBooted():
                self._wake(event.cp_id)

    # --- creating sessions ------------------------------------------------------------------

    async def create_pending(self, cp: ChargerRecord, connector_id: int | None, tariff: Tariff,
                             amount_msat: int, *, description_hash: bytes,
                             comment: str | None = None, payer_pubkey: str | None = None,
                             payer_lud16: str | None = None,
                             expiry: float | None = None,
                             reservation_fee_msat: int = 0) -> PendingPayment:
        """A session waiting for its invoice to be paid; the session row is written first.

        `expiry` (seconds, e.g. what is left of a price quote) shortens the invoice's life
        below `invoice_expiry`, to no less than `MIN_INVOICE_SECONDS`. With
        `reservation_fee_msat` the invoice is that fee and, paid, the session holds
        `connector_id` (`reserved`, `strom/sessions/reservations.py`).
        """
        session = self._new_session(cp, connector_id, tariff, payer_pubkey, payer_lud16, comment)
        if reservation_fee_msat:
            session = replace(session, reservation_fee_msat=reservation_fee_msat,
                              active_connector_id=connector_id,
                              reservation_id=secrets.randbelow(2**31 - 2) + 1)
        async with self._db.transaction() as conn:
            await self.repo.insert(conn, session)
        try:
            invoice = await self._wallet.create_invoice(
                amount_msat, description_hash=description_hash,
                expiry=self._invoice_expiry if expiry is None else
                min(self._invoice_expiry, max(MIN_INVOICE_SECONDS, math.ceil(expiry))))
        except WalletError as exc:
            await self.fail(session.id, f"no invoice: {exc}", only_if=(State.PENDING_PAYMENT,))
            raise
        async with self._db.transaction() as conn:
            await self.repo.add_invoice(
                conn, payment_hash=invoice.payment_hash, session_id=session.id, purpose="prepay",
                amount_msat=amount_msat, bolt11=invoice.bolt11, expires_at=iso(invoice.expires_at))
        return PendingPayment(session, invoice.bolt11, invoice.payment_hash, invoice.preimage)

    async def paid_elsewhere(self, cp: ChargerRecord, tariff: Tariff, *, bolt11: str,
                             payment_hash: str, amount_msat: int, expires_at: str,
                             payer_pubkey: str) -> Session | None:
        """A session for a payment another service received (a zap to `external_lnurl`).

        The payment is recorded under its payment hash like our own invoices, so the same
        receipt never pays for two sessions; None when that hash was seen before.
        """
        session = self._new_session(cp, None, tariff, payer_pubkey, None, None)
        async with self._db.transaction() as conn:
            if await self.repo.invoice_in(conn, payment_hash) is not None:
                return None
            await self.repo.insert(conn, session)
            await self.repo.add_invoice(conn, payment_hash=payment_hash, session_id=session.id,
                                        purpose="prepay", amount_msat=amount_msat,
                                        bolt11=bolt11, expires_at=expires_at)
        await self.on_paid(payment_hash, amount_msat)
        return await self.repo.get(session.id)

    def _new_session(self, cp: ChargerRecord, connector_id: int | None, tariff: Tariff,
                     payer_pubkey: str | None, payer_lud16: str | None,
                     comment: str | None) -> Session:
        now = iso()
        return Session(
            id=secrets.token_hex(8), token=secrets.token_urlsafe(16),
            view_token=secrets.token_urlsafe(16), topup_token=secrets.token_urlsafe(16),
            cp_id=cp.id,
            connector_id=connector_id, active_connector_id=None, id_tag=secrets.token_hex(10),
            state=State.PENDING_PAYMENT, tariff=tariff, paid_msat=0, consumed_msat=0,
            refunded_msat=0, forfeited_msat=0, held_msat=0, unbilled_msat=0, energy_wh=0.0,
            power_w=None, soc_percent=None, meter_start_wh=None, max_power_w=None,
            last_reading_at=None, transaction_id=None, payer_pubkey=payer_pubkey,
            payer_lud16=payer_lud16, comment=comment, created_at=now, paid_at=None,
            start_requested_at=None, started_at=None, stopped_at=None, stop_reason=None,
            failure_reason=None, updated_at=now)

    async def create_topup(self, session: Session, amount_msat: int, *,
                           description_hash: bytes) -> PendingPayment:
        """An invoice that adds to the budget of a running session."""
        if session.state not in (State.RESERVED, State.PAID, State.STARTING, State.CHARGING):
            raise SessionError(f"session is {session.state.value}; a top-up needs a running session")
        invoice = await self._wallet.create_invoice(
            amount_msat, description_hash=description_hash, expiry=self._invoice_expiry)
        async with self._db.transaction() as conn:
            await self.repo.add_invoice(
                conn, payment_hash=invoice.payment_hash, session_id=session.id, purpose="topup",
                amount_msat=amount_msat, bolt11=invoice.bolt11, expires_at=iso(invoice.expires_at))
        return PendingPayment(session, invoice.bolt11, invoice.payment_hash)

    # --- money in ---------------------------------------------------------------------------

    async def on_paid(self, payment_hash: str, amount_msat: int) -> None:
        """Record a paid invoice once; a prepaid session then starts, a top-up adds budget."""
        async with self._db.transaction() as conn:
            invoice = await self.repo.invoice_in(conn, payment_hash)
            if invoice is None or not await self.repo.mark_invoice_paid(conn, payment_hash):
                return  # not a session invoice, or already recorded
            session = await self.repo.get_in(conn, invoice["session_id"])
            assert session is not None
            # What the wallet received counts, whatever the invoice asked for.
            received = amount_msat or invoice["amount_msat"]
            fields: dict[str, Any] = {"paid_msat": session.paid_msat + received}
            if session.state == State.PENDING_PAYMENT and session.reservation_fee_msat:
                fields.update(paid_at=iso(), **await self._reserve_or_fail(conn, session))
            elif session.state == State.PENDING_PAYMENT:
                fields.update(state=State.PAID, paid_at=iso())
            elif session.state == State.RESERVED:
                # The reserver pays to charge within the window: the fee is in the budget.
                fields.update(state=State.PAID)
            elif session.state in (State.REFUNDED, State.SETTLED):
                # A top-up paid after the end: the money is the payer's to withdraw.
                fields.update(state=State.STOPPED)
            await self.repo.update(conn, session.id, **fields)
            await ledger.payment_received(conn, session.id, received, payment_hash)
            session = await self.repo.get_in(conn, session.id)
        assert session is not None
        log.info("session %s: %d msat received (%s)", session.id, received, invoice["purpose"])
        crash_point("paid")
        self.publish(session)
        if session.state == State.PAID:
            self._ensure_starting(session.id)

    async def _reserve_or_fail(self, conn: aiosqlite.Connection,
                               session: Session) -> dict[str, Any]:
        """A paid reservation holds its connector, unless another session took it meanwhile
        (then the fee is refundable)."""
        held = await self.repo.held_connectors(session.cp_id)
        if session.active_connector_id in held:
            return {"state": State.FAILED, "stopped_at": iso(),
                    "failure_reason": "the connector was taken before the reservation was paid"}
        return {"state": State.RESERVED}

    # --- starting ---------------------------------------------------------------------------

    def _ensure_starting(self, session_id: str) -> None:
        """One start task per paid session (the event, recovery and reconcile may all ask)."""
        if session_id in self._starters:
            return
        self._starters.add(session_id)
        self._spawn(self._start_once(session_id), f"start:{session_id}")

    async def _start_once(self, session_id: str) -> None:
        try:
            await self._begin_start(session_id)
        finally:
            self._starters.discard(session_id)

    async def _begin_start(self, session_id: str) -> None:
        """Reserve a connector and ask the charger to start, or fail the session (refundable)."""
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None or session.state != State.PAID:
                return
            cp = await self._charge_points.get(session.cp_id)
            # A reserved connector is the session's own: the charger holds it for its idTag.
            choice = ConnectorChoice(session.active_connector_id) \
                if session.reservation_fee_msat and session.active_connector_id \
                else await self.free_connector(cp, session.connector_id)
            if choice.connector_id is None:
                await self._fail(conn, session, choice.reason)
            else:
                await self.repo.update(conn, session.id, expect_state=State.PAID,
                                       state=State.STARTING,
                                       active_connector_id=choice.connector_id,
                                       start_requested_at=iso())
            session = await self.repo.get_in(conn, session_id)
        assert session is not None
        self.publish(session)
        if session.state != State.STARTING:
            return
        crash_point("starting")
        self._spawn(self._start_timeout(session.id, self._settings.start_timeout),
                    f"start-timeout:{session.id}")
        await self._remote_start(session)

    async def free_connector(self, cp: ChargerRecord | None,
                             connector_id: int | None) -> ConnectorChoice:
        """A connector a new session may use now (the requested one, or any), else why not.

        `_begin_start` calls this inside its store transaction, so two payers racing for one
        connector get it once: the first commits `starting`, the second then sees it taken.
        """
        if cp is None:
            return ConnectorChoice(None, "charge point was removed")
        held = await self.repo.held_connectors(cp.id)
        held.update({n: until for (c, n), until in self.held_elsewhere.items() if c == cp.id})
        return choose_connector(cp, connector_id, connected=self._chargers.is_connected(cp.id),
                                busy=set(held), reserved={
                                    n: until for n, until in held.items() if until is not None})

    async def _remote_start(self, session: Session) -> None:
        assert session.active_connector_id is not None
        result = await self._chargers.start(session.cp_id, session.active_connector_id,
                                            session.id_tag)
        if result.answered and not result.ok:
            await self.fail(session.id, "charger rejected the start", only_if=(State.STARTING,))
        elif not result.ok:  # offline, CALLERROR, timeout: the start timeout decides
            log.warning("session %s: RemoteStart failed: %s", session.id, result.reason)
            if not self._chargers.is_connected(session.cp_id):
                await self.fail(session.id, "charger offline", only_if=(State.STARTING,))

    async def _start_timeout(self, session_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.fail(session_id, "charger did not start in time", only_if=(State.STARTING,))

    async def fail(self, session_id: str, reason: str, *, only_if: tuple[State, ...]) -> bool:
        """Fail a session still in one of `only_if`; its whole unused payment is refundable."""
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None or session.state not in only_if:
                return False
            await self._fail(conn, session, reason)
            session = await self.repo.get_in(conn, session_id)
        assert session is not None
        self.publish(session)
        return True

    async def _fail(self, conn: aiosqlite.Connection, session: Session, reason: str) -> None:
        log.info("session %s failed: %s", session.id, reason)
        await self.repo.update(conn, session.id, state=State.FAILED,
                               failure_reason=reason, stopped_at=iso())

    async def authorize(self, cp_id: str, connector_id: int | None, id_tag: str) -> str:
        """OCPP Authorize/StartTransaction: only a session's own idTag, on its own charger."""
        session = await self.repo.by_id_tag(id_tag)
        if session is None or session.cp_id != cp_id:
            return "Invalid"
        if session.state in (State.PAID, State.STARTING):
            return "Accepted"
        if session.state == State.CHARGING:
            same = connector_id in (None, session.active_connector_id)
            return "Accepted" if same else "ConcurrentTx"
        return "Invalid"

    async def owns_id_tag(self, cp_id: str, id_tag: str) -> bool:
        """Whether `id_tag` is a session's of this charger (passthrough: strom answers it,
        the charger's backend never sees it)."""
        session = await self.repo.by_id_tag(id_tag)
        return session is not None and session.cp_id == cp_id

    async def busy_connectors(self, cp_id: str) -> set[int]:
        """Connectors a session or an eMSP's reservation holds (reserved, starting,
        charging, stopping)."""
        return await self.repo.busy_connectors(cp_id) | {
            n for (c, n) in self.held_elsewhere if c == cp_id}

    async def on_transaction_started(self, event: TransactionStarted) -> None:
        """StartTransaction: a starting session charges; a late one is linked and stopped."""
        late_other = False
        async with self._db.transaction() as conn:
            session = await self.repo.by_id_tag_in(conn, event.id_tag)
            if session is None or session.cp_id != event.cp_id:
                return
            linked: dict[str, Any] = {
                "transaction_id": event.transaction_id, "active_connector_id": event.connector_id,
                "meter_start_wh": event.meter_start_wh, "started_at": iso(event.timestamp)}
            if session.state in (State.STARTING, State.PAID):
                await self.repo.update(conn, session.id, state=State.CHARGING, **linked)
            elif session.state in ENDED_STATES and session.transaction_id is None:
                # Started after the session ended (a stop during starting, a start timeout):
                # it is the session's energy, billed to what is left, and it is stopped now.
                await self.repo.update(conn, session.id, **linked)
                session = await self.repo.get_in(conn, session.id)
                assert session is not None
                await self._reopen(conn, session, "the charger started after the session ended")
            elif session.transaction_id != event.transaction_id:
                late_other = True  # one more transaction for an idTag that has one: stop it
            session = await self.repo.get_in(conn, session.id)
        assert session is not None
        if late_other:
            log.warning("session %s: charger %s started another transaction %d; stopping it",
                        session.id, event.cp_id, event.transaction_id)
            self._spawn(self._stop_extra(session, event.transaction_id),
                        f"stop-extra:{event.transaction_id}")
            return
        log.info("session %s %s (transaction %d)", session.id, session.state.value,
                 event.transaction_id)
        self.publish(session)
        if session.state == State.STOPPING_UNCONFIRMED:
            self._ensure_stopping(session.id)

    # --- metering ---------------------------------------------------------------------------

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
                self._watchdog.pop(session.id, None)
            if power_w is not None:
                fields["power_w"] = power_w
                fields["max_power_w"] = max(power_w, session.max_power_w or 0.0)
            if soc_percent is not None:
                fields["soc_percent"] = soc_percent
            if session.state == State.STOPPING_UNCONFIRMED:
                after = self._with(session, **fields)
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
            self._ensure_stopping(session.id)

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

    @staticmethod
    def _with(session: Session, **fields: Any) -> Session:
        return replace(session, **fields)

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
                    await self._watch(session)
            except Exception:
                log.exception("session %s: metering tick failed", session.id)

    async def _watch(self, session: Session) -> None:
        """No usable reading for `watchdog_intervals` intervals: ask for one
        (TriggerMessage MeterValues); still none one interval later: stop and say why."""
        since = holds.last_evidence(session)
        interval = self._meter_interval
        if not self._chargers.is_connected(session.cp_id):
            # Nobody to ask: its queued readings arrive when it reconnects (the quiet time
            # counts from the last one, so a charger back without readings is asked at once).
            self._watchdog.pop(session.id, None)
            return
        if since is None or session.active_connector_id is None or \
                (utcnow() - since).total_seconds() < interval * self._settings.watchdog_intervals:
            return
        loop_now = asyncio.get_running_loop().time()
        asked = self._watchdog.get(session.id)
        if asked is None:
            self._watchdog[session.id] = loop_now
            log.warning("session %s: no meter reading for %.0f s; asking the charger",
                        session.id, (utcnow() - since).total_seconds())
            result = await self._chargers.trigger(session.cp_id, Trigger.METER_VALUES,
                                                  session.active_connector_id)
            if not result.ok:
                log.warning("session %s: TriggerMessage failed: %s", session.id, result.reason)
        elif loop_now - asked >= interval:
            self._watchdog.pop(session.id, None)
            log.warning("session %s: still no meter reading; stopping", session.id)
            await self.request_stop(session.id, "stopped: the charger sent no meter readings")

    # --- recovery ---------------------------------------------------------------------------

    async def recover(self) -> None:
        """Continue after a restart: reconcile unpaid invoices, restart or expire starts, and
        ask chargers again about every stop they have not confirmed."""
        for invoice in await self.repo.unpaid_invoices():
            with contextlib.suppress(WalletError):
                status = await self._wallet.invoice_status(invoice["payment_hash"])
                if status is not None and status.state == InvoiceState.PAID:
                    await self.on_paid(invoice["payment_hash"], status.amount_msat)
        for session in await self.repo.in_states(State.PAID):
            self._ensure_starting(session.id)
        for session in await self.repo.in_states(State.STARTING):
            requested = parse_iso(session.start_requested_at or session.updated_at)
            left = self._settings.start_timeout - (utcnow() - requested).total_seconds()
            self._spawn(self._start_timeout(session.id, max(left, 0.0)),
                        f"start-timeout:{session.id}")
        for session in await self.repo.in_states(State.STOPPING, State.STOPPING_UNCONFIRMED):
            # The RemoteStop may never have gone out: ask again until the charger confirms.
            self._ensure_stopping(session.id)

    async def reconcile(self) -> None:
        """Act on money the store shows and the sessions have not: an invoice the wallet
        recorded paid whose session never heard of it (its `InvoicePaid` lost, or the handler
        failed), and a session in `paid` with no start task. Idempotent with the event path:
        `on_paid` records an invoice once, and one start task runs per session."""
        invoices, paid = await self.repo.stranded_payments()
        for payment_hash, received_msat in invoices:
            log.warning("invoice %s… is paid but was not applied; applying it now",
                        payment_hash[:16])
            await self.on_paid(payment_hash, received_msat)
        for session_id in paid:
            if session_id not in self._starters:
                log.warning("session %s is paid with no start under way; starting it",
                            session_id)
                self._ensure_starting(session_id)

    async def _reconcile_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconcile()
            except Exception:  # the next round tries again
                log.exception("reconciling paid invoices and sessions failed")

    # --- helpers ----------------------------------------------------------------------------

    def publish(self, session: Session) -> None:
        """Tell subscribers (pages, bots, TUI) that a session changed."""
        self._bus.publish(SessionChanged(session.id, session.cp_id, session.state.value, {
            "energy_wh": session.energy_wh, "consumed_msat": session.consumed_msat,
            "paid_msat": session.paid_msat, "refundable_msat": session.refundable_msat}))
