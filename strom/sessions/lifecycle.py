"""The session service: one state machine from payment to charging to stop.

Every transition is written (with its ledger entries) in one store transaction before strom
acts on it, and facts arrive as bus events, so a crash at any point leaves a state that
`recover()` continues from; a paid invoice or paid session nobody acted on (an event lost, a
handler that failed) is found in the store within seconds by `reconcile()`. Actions on the
charger (RemoteStart/RemoteStop) run as tasks of their own: the event handlers only decide and
persist. The allowed transitions are the table in `strom/sessions/states.py`; the repository
refuses any other.

This module creates sessions and their invoices, routes the bus's facts, recovers and
reconciles; the service's other parts are mixed in: starting (`starting.py`: payment →
RemoteStart → charging), metering (`metering.py`: readings and ticks → money, room, holds;
the meter watchdog, `watchdog.py`), stopping and settling on the charger's evidence
(`stopping.py`), and what interfaces may read (`queries.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import aiosqlite

from strom.chargers.control import ChargerControl
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
    of_transactions,
)
from strom.lightning.wallet import InvoiceState, Wallet, WalletError
from strom.sessions.connectors import HeldConnectors
from strom.sessions.expiry import UnpaidPurger
from strom.sessions.metering import TICK_SECONDS, MeterFlow
from strom.sessions.model import Session, State
from strom.sessions.queries import SessionQueries
from strom.sessions.repository import SessionRepository
from strom.sessions.starting import StartFlow
from strom.sessions.stopping import SessionError, StopFlow
from strom.sessions.watchdog import MeterWatchdog
from strom.store.charge_points import ChargePointRepository, ChargerRecord
from strom.store.db import Database
from strom.store.extra_transactions import ExtraTransactionRepository
from strom.tariffs.model import Tariff
from strom.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

# The meter interval a charger is expected to keep when strom leaves its own setting.
DEFAULT_METER_INTERVAL = 60.0
# An invoice cut short to its price quote's end stays payable at least this long: a wallet
# needs a moment, and the exposure past a slot's end stays this small.
MIN_INVOICE_SECONDS = 30


@dataclass(frozen=True, slots=True)
class PendingPayment:
    session: Session
    bolt11: str
    payment_hash: str
    preimage: str | None = None


class SessionService(SessionQueries, StartFlow, MeterFlow, StopFlow):
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
        self.held_elsewhere = HeldConnectors()
        self._stoppers: set[str] = set()  # sessions with a RemoteStop loop running
        self._settling: set[str] = set()  # unconfirmed sessions whose connector says ended
        self._woken: dict[str, asyncio.Event] = {}  # per charger: it just (re)connected
        self._extras = ExtraTransactionRepository(db)
        self.watchdog = MeterWatchdog(chargers=chargers, meter_interval=meter_interval,
                                      intervals=settings.watchdog_intervals,
                                      stop=self.request_stop)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the facts sessions follow, then continue whatever a crash interrupted."""
        self._bus.subscribe(self._on_event, InvoicePaid, TransactionStarted, MeterSample,
                            TransactionStopped, ConnectorStatusChanged, ChargePointConnected,
                            ChargePointBooted, durable=True, when=of_transactions)
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
                # Not awaited here: payments arriving together are recorded together (their
                # units join one group commit) instead of one after another behind this queue.
                self._spawn(self._record_payment(event), f"paid:{event.payment_hash[:16]}")
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

    async def _record_payment(self, event: InvoicePaid) -> None:
        try:
            await self.on_paid(event.payment_hash, event.amount_msat)
        except Exception:  # reconcile() applies it within seconds
            log.exception("recording the payment of invoice %s… failed",
                          event.payment_hash[:16])

    # --- creating sessions ------------------------------------------------------------------

    async def create_pending(self, cp: ChargerRecord, connector_id: int | None, tariff: Tariff,
                             amount_msat: int, *, description_hash: bytes,
                             comment: str | None = None, payer_pubkey: str | None = None,
                             payer_lud16: str | None = None,
                             expiry: float | None = None,
                             reservation_fee_msat: int = 0) -> PendingPayment:
        """A session waiting for its invoice to be paid: the session and its invoice are
        written in one transaction once the wallet made the invoice (nobody can pay it
        before then: the payer has not seen it). When the wallet cannot, the session is
        kept as failed, the reason on record.

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
        try:
            invoice = await self._wallet.create_invoice(
                amount_msat, description_hash=description_hash,
                expiry=self._invoice_expiry if expiry is None else
                min(self._invoice_expiry, max(MIN_INVOICE_SECONDS, math.ceil(expiry))))
        except WalletError as exc:
            async with self._db.transaction() as conn:
                await self.repo.insert(conn, session)
            await self.fail(session.id, f"no invoice: {exc}", only_if=(State.PENDING_PAYMENT,))
            raise
        async def record(conn: aiosqlite.Connection) -> None:
            await self.repo.insert(conn, session)
            await self.repo.add_invoice(
                conn, payment_hash=invoice.payment_hash, session_id=session.id, purpose="prepay",
                amount_msat=amount_msat, bolt11=invoice.bolt11, expires_at=iso(invoice.expires_at))

        # A unit of a group commit (one hop to the store's thread, shared with the invoices
        # asked for at the same time), committed before the payer sees the invoice.
        await self._db.run(record)
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
        if session.state not in (State.RESERVED, State.PAID, State.STARTING, State.CHARGING) \
                or session.stop_requested:
            state = "stopping" if session.stop_requested else session.state.value
            raise SessionError(f"session is {state}; a top-up needs a running session")
        invoice = await self._wallet.create_invoice(
            amount_msat, description_hash=description_hash, expiry=self._invoice_expiry)
        async def record(conn: aiosqlite.Connection) -> None:
            await self.repo.add_invoice(
                conn, payment_hash=invoice.payment_hash, session_id=session.id, purpose="topup",
                amount_msat=amount_msat, bolt11=invoice.bolt11, expires_at=iso(invoice.expires_at))

        await self._db.run(record)  # as create_pending's
        return PendingPayment(session, invoice.bolt11, invoice.payment_hash)

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
            self._ensure_stopping(session)
        for extra in await self._extras.open():
            self._ensure_stopping_extra(extra.cp_id, extra.transaction_id)

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
