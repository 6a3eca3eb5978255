"""The session service: one state machine from payment to charging to stop.

Every transition is written (with its ledger entries) in one store transaction before strom
acts on it, and facts arrive as bus events, so a crash at any point leaves a state that
`recover()` continues from. Actions on the charger (RemoteStart/RemoteStop) run as tasks of
their own: the event handlers only decide and persist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from strom.config import SessionSettings
from strom.events import (
    EventBus,
    InvoicePaid,
    MeterSample,
    SessionChanged,
    TransactionStarted,
    TransactionStopped,
)
from strom.failpoints import crash_point
from strom.lightning.wallet import InvoiceState, Wallet, WalletError
from strom.sessions import ledger
from strom.sessions.connectors import ConnectorChoice, choose_connector, reason_in_words
from strom.sessions.expiry import UnpaidPurger
from strom.sessions.model import ACTIVE_STATES, Session, State
from strom.sessions.repository import SessionRepository
from strom.store.charge_points import ChargePoint, ChargePointRepository
from strom.store.db import Database
from strom.tariffs.model import Rating, Tariff, cost_under_lock
from strom.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

TICK_SECONDS = 15.0
STOP_RETRY_SECONDS = 10.0  # a stopping session asks its charger again this often
# An invoice cut short to its price quote's end stays payable at least this long: a wallet
# needs a moment, and the exposure past a slot's end stays this small.
MIN_INVOICE_SECONDS = 30
# A driver usually plugs in first: the connector then says Preparing until charging starts.


class ChargerControl(Protocol):
    """What sessions need from the OCPP central system."""

    def is_connected(self, cp_id: str) -> bool: ...

    async def remote_start(self, cp_id: str, connector_id: int, id_tag: str) -> bool: ...

    async def remote_stop(self, cp_id: str, transaction_id: int) -> bool: ...


class SessionError(Exception):
    """A request about a session that cannot be served; the message is for the user."""


@dataclass(frozen=True, slots=True)
class PendingPayment:
    session: Session
    bolt11: str
    payment_hash: str
    preimage: str | None = None


class SessionService:
    """Creates sessions, follows them through OCPP and money events, and stops them in time."""

    def __init__(self, *, db: Database, bus: EventBus, settings: SessionSettings,
                 charge_points: ChargePointRepository, wallet: Wallet,
                 chargers: ChargerControl, invoice_expiry: int = 600) -> None:
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
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the facts sessions follow, then continue whatever a crash interrupted."""
        self._bus.subscribe(self._on_event, InvoicePaid, TransactionStarted, MeterSample,
                            TransactionStopped)
        await self.recover()
        self._spawn(self._tick(), "sessions:tick")
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

    # --- creating sessions ------------------------------------------------------------------

    async def create_pending(self, cp: ChargePoint, connector_id: int | None, tariff: Tariff,
                             amount_msat: int, *, description_hash: bytes,
                             comment: str | None = None, payer_pubkey: str | None = None,
                             payer_lud16: str | None = None,
                             expiry: float | None = None) -> PendingPayment:
        """A session waiting for its invoice to be paid; the session row is written first.

        `expiry` (seconds, e.g. what is left of a price quote) shortens the invoice's life
        below `invoice_expiry`, to no less than `MIN_INVOICE_SECONDS`.
        """
        session = self._new_session(cp, connector_id, tariff, payer_pubkey, payer_lud16, comment)
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

    async def paid_elsewhere(self, cp: ChargePoint, tariff: Tariff, *, bolt11: str,
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

    def _new_session(self, cp: ChargePoint, connector_id: int | None, tariff: Tariff,
                     payer_pubkey: str | None, payer_lud16: str | None,
                     comment: str | None) -> Session:
        now = iso()
        return Session(
            id=secrets.token_hex(8), token=secrets.token_urlsafe(16), cp_id=cp.id,
            connector_id=connector_id, active_connector_id=None, id_tag=secrets.token_hex(10),
            state=State.PENDING_PAYMENT, tariff=tariff, paid_msat=0, consumed_msat=0,
            refunded_msat=0, forfeited_msat=0, energy_wh=0.0, power_w=None, soc_percent=None,
            meter_start_wh=None, transaction_id=None, payer_pubkey=payer_pubkey,
            payer_lud16=payer_lud16, comment=comment, created_at=now, paid_at=None,
            start_requested_at=None, started_at=None, stopped_at=None, stop_reason=None,
            failure_reason=None, updated_at=now)

    async def create_topup(self, session: Session, amount_msat: int, *,
                           description_hash: bytes) -> PendingPayment:
        """An invoice that adds to the budget of a running session."""
        if session.state not in (State.PAID, *ACTIVE_STATES) or session.state == State.STOPPING:
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
            fields: dict[str, object] = {"paid_msat": session.paid_msat + received}
            if session.state == State.PENDING_PAYMENT:
                fields.update(state=State.PAID, paid_at=iso())
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
            self._spawn(self._begin_start(session.id), f"start:{session.id}")

    # --- starting ---------------------------------------------------------------------------

    async def _begin_start(self, session_id: str) -> None:
        """Reserve a connector and ask the charger to start, or fail the session (refundable)."""
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None or session.state != State.PAID:
                return
            cp = await self._charge_points.get(session.cp_id)
            choice = await self.free_connector(cp, session.connector_id)
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

    async def free_connector(self, cp: ChargePoint | None,
                             connector_id: int | None) -> ConnectorChoice:
        """A connector a new session may use now (the requested one, or any), else why not.

        `_begin_start` calls this inside its store transaction, so two payers racing for one
        connector get it once: the first commits `starting`, the second then sees it taken.
        """
        if cp is None:
            return ConnectorChoice(None, "charge point was removed")
        return choose_connector(cp, connector_id, connected=self._chargers.is_connected(cp.id),
                                busy=await self.repo.busy_connectors(cp.id))

    async def _remote_start(self, session: Session) -> None:
        assert session.active_connector_id is not None
        try:
            accepted = await self._chargers.remote_start(
                session.cp_id, session.active_connector_id, session.id_tag)
        except Exception as exc:  # offline, CALLERROR, timeout: the start timeout decides
            log.warning("session %s: RemoteStart failed: %s", session.id, exc)
            if not self._chargers.is_connected(session.cp_id):
                await self.fail(session.id, "charger offline", only_if=(State.STARTING,))
            return
        if not accepted:
            await self.fail(session.id, "charger rejected the start", only_if=(State.STARTING,))

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

    async def _fail(self, conn: object, session: Session, reason: str) -> None:
        log.info("session %s failed: %s", session.id, reason)
        await self.repo.update(conn, session.id, state=State.FAILED,  # type: ignore[arg-type]
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

    async def on_transaction_started(self, event: TransactionStarted) -> None:
        async with self._db.transaction() as conn:
            cursor = await conn.execute("SELECT id FROM sessions WHERE id_tag = ?", (event.id_tag,))
            row = await cursor.fetchone()
            if row is None:
                return
            session = await self.repo.get_in(conn, row[0])
            assert session is not None
            if session.cp_id != event.cp_id or session.state not in (State.STARTING, State.PAID):
                return
            await self.repo.update(
                conn, session.id, state=State.CHARGING, transaction_id=event.transaction_id,
                active_connector_id=event.connector_id, meter_start_wh=event.meter_start_wh,
                started_at=iso(event.timestamp))
            session = await self.repo.get_in(conn, session.id)
        assert session is not None
        log.info("session %s charging (transaction %d)", session.id, event.transaction_id)
        self.publish(session)

    # --- metering ---------------------------------------------------------------------------

    async def on_meter(self, sample: MeterSample) -> None:
        if sample.transaction_id is None:
            return
        session = await self.repo.by_transaction(sample.cp_id, sample.transaction_id)
        if session is None or session.state not in (State.CHARGING, State.STOPPING):
            return
        await self._meter(session.id, energy_register_wh=sample.energy_wh, power_w=sample.power_w,
                          soc_percent=sample.soc_percent, at=sample.timestamp)

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
            if session is None or session.state not in (State.CHARGING, State.STOPPING):
                return
            energy = session.energy_wh
            if energy_register_wh is not None and session.meter_start_wh is not None:
                # A meter never runs backwards; a smaller reading is a glitch, not a refund.
                energy = max(energy, energy_register_wh - session.meter_start_wh)
            consumed, rating = self._consumed(session, energy, at)
            fields: dict[str, object] = {"energy_wh": energy, "consumed_msat": consumed}
            if rating.rate_msat_per_kwh != session.rate_msat_per_kwh:
                fields.update(rate_msat_per_kwh=rating.rate_msat_per_kwh,
                              rate_since_wh=rating.since_wh, rated_msat=rating.rated_msat)
            if power_w is not None:
                fields["power_w"] = power_w
            if soc_percent is not None:
                fields["soc_percent"] = soc_percent
            # Stop while the next metering interval (about as costly as the last) and the
            # charger's reaction time (the configured margin) still fit into the budget.
            next_interval = consumed - session.consumed_msat
            if (not final and session.state == State.CHARGING and consumed + next_interval
                    + self._settings.safety_margin_msat >= session.paid_msat):
                fields.update(state=State.STOPPING, stop_reason="budget used up")
                stop = True
            await self.repo.update(conn, session.id, **fields)
            await ledger.energy_consumed(conn, session.id, consumed - session.consumed_msat)
            session = await self.repo.get_in(conn, session.id)
        assert session is not None
        self.publish(session)
        if stop:
            log.info("session %s: budget used up, stopping", session.id)
            self._spawn(self._remote_stop(session), f"stop:{session.id}")

    def _consumed(self, session: Session, energy_wh: float,
                  at: datetime | None) -> tuple[int, Rating]:
        """What the session owes so far: never less than before, never more than paid.

        A charger's clock may be off: its reading time counts only between start and now.
        """
        now = utcnow()
        started = parse_iso(session.started_at) if session.started_at else now
        minutes = (now - started) / timedelta(minutes=1)
        owed, rating = cost_under_lock(
            session.tariff, Rating(session.rate_msat_per_kwh, session.rate_since_wh,
                                   session.rated_msat),
            session.energy_wh, energy_wh, minutes, min(max(at or now, started), now))
        return max(session.consumed_msat, min(owed, session.paid_msat)), rating

    async def _tick(self) -> None:
        """Time passes even when a charger sends no meter values: per-minute prices count."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            for session in await self.repo.in_states(State.CHARGING):
                try:
                    await self._meter(session.id, energy_register_wh=None)
                except Exception:
                    log.exception("session %s: metering tick failed", session.id)

    # --- stopping ---------------------------------------------------------------------------

    async def request_stop(self, session_id: str, reason: str) -> Session:
        """Stop a charging session (driver or operator); the charger's StopTransaction ends it."""
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None:
                raise SessionError("no such session")
            if session.state in (State.PAID, State.STARTING):
                await self._fail(conn, session, f"stopped before charging: {reason}")
            elif session.state == State.CHARGING:
                await self.repo.update(conn, session.id, state=State.STOPPING, stop_reason=reason)
            session = await self.repo.get_in(conn, session_id)
        assert session is not None
        self.publish(session)
        if session.state == State.STOPPING:
            crash_point("stopping")
            self._spawn(self._remote_stop(session), f"stop:{session.id}")
        return session

    async def _stop_until_stopped(self, session_id: str) -> None:
        while (session := await self.repo.get(session_id)) is not None \
                and session.state == State.STOPPING:
            if not self._chargers.is_connected(session.cp_id):
                await asyncio.sleep(1.0)  # it will reconnect after our restart
                continue
            await self._remote_stop(session)
            await asyncio.sleep(STOP_RETRY_SECONDS)

    async def _remote_stop(self, session: Session) -> None:
        assert session.transaction_id is not None
        try:
            accepted = await self._chargers.remote_stop(session.cp_id, session.transaction_id)
            if not accepted:
                log.warning("session %s: charger rejected RemoteStop", session.id)
        except Exception as exc:
            # The charger reports StopTransaction when it can; until then nothing more is owed
            # than what the last meter reading says, and the budget cap still holds.
            log.warning("session %s: RemoteStop failed: %s", session.id, exc)

    async def on_transaction_stopped(self, cp_id: str, transaction_id: int, meter_stop_wh: float,
                                     reason: str) -> None:
        session = await self.repo.by_transaction(cp_id, transaction_id)
        if session is None or session.state not in (State.CHARGING, State.STOPPING):
            return
        await self._meter(session.id, energy_register_wh=meter_stop_wh, final=True)
        await self._finalize(session.id, reason_in_words(reason))

    async def _finalize(self, session_id: str, reason: str) -> None:
        """Charging is over: what is left of the payment becomes refundable."""
        async with self._db.transaction() as conn:
            session = await self.repo.get_in(conn, session_id)
            if session is None or session.state not in (State.CHARGING, State.STOPPING):
                return
            final = State.STOPPED if session.refundable_msat > 0 else State.SETTLED
            await self.repo.update(conn, session.id, state=final, stopped_at=iso(), power_w=0.0,
                                   stop_reason=session.stop_reason or reason)
            session = await self.repo.get_in(conn, session.id)
        assert session is not None
        log.info("session %s %s: %.0f Wh, %d msat used, %d msat refundable", session.id,
                 session.state.value, session.energy_wh, session.consumed_msat,
                 session.refundable_msat)
        self.publish(session)

    async def stop_and_wait(self, session_id: str, reason: str) -> Session:
        """Stop the session and wait for the charger's StopTransaction (`stop_timeout`).

        A charger that does not confirm in time is billed to its last meter reading: the
        payer is never kept waiting for their refund by a charger that went quiet.
        """
        async with self._bus.listen(SessionChanged) as changes:
            session = await self.request_stop(session_id, reason)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._settings.stop_timeout
            while session.state in (State.CHARGING, State.STOPPING):
                left = deadline - loop.time()
                if left <= 0:
                    log.warning("session %s: no StopTransaction within %g s; billing the last"
                                " meter reading", session.id, self._settings.stop_timeout)
                    await self._finalize(session.id, "charger did not confirm the stop")
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changes.get(), timeout=min(left, 1.0))
                session = await self.repo.get(session_id) or session
        return await self.repo.get(session_id) or session

    # --- recovery ---------------------------------------------------------------------------

    async def recover(self) -> None:
        """Continue after a restart: reconcile unpaid invoices, restart or expire starts."""
        for invoice in await self.repo.unpaid_invoices():
            with contextlib.suppress(WalletError):
                status = await self._wallet.invoice_status(invoice["payment_hash"])
                if status is not None and status.state == InvoiceState.PAID:
                    await self.on_paid(invoice["payment_hash"], status.amount_msat)
        for session in await self.repo.in_states(State.PAID):
            self._spawn(self._begin_start(session.id), f"start:{session.id}")
        for session in await self.repo.in_states(State.STARTING):
            requested = parse_iso(session.start_requested_at or session.updated_at)
            left = self._settings.start_timeout - (utcnow() - requested).total_seconds()
            self._spawn(self._start_timeout(session.id, max(left, 0.0)),
                        f"start-timeout:{session.id}")
        for session in await self.repo.in_states(State.STOPPING):
            # The RemoteStop may never have gone out: ask again until the charger confirms.
            self._spawn(self._stop_until_stopped(session.id), f"stop:{session.id}")

    # --- helpers ----------------------------------------------------------------------------

    def publish(self, session: Session) -> None:
        """Tell subscribers (pages, bots, TUI) that a session changed."""
        self._bus.publish(SessionChanged(session.id, session.cp_id, session.state.value, {
            "energy_wh": session.energy_wh, "consumed_msat": session.consumed_msat,
            "paid_msat": session.paid_msat, "refundable_msat": session.refundable_msat}))
