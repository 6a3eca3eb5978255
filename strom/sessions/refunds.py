"""Refunds: paying back what a payer prepaid and did not use, at most once.

A refund is claimed before it is paid: one store transaction marks the withdraw link used,
records the refund as pending and moves the amount out of the session's refundable balance.
Only then does the wallet pay. A failed payment is reversed (the amount is refundable again);
a payment in an unknown state is looked up later, never repeated blindly.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiosqlite
import bolt11

from strom.config import SessionSettings
from strom.events import EventBus
from strom.failpoints import crash_point
from strom.lightning.address import invoice_for_address
from strom.lightning.wallet import PaymentResult, PaymentStatus, Wallet, WalletError
from strom.outbound import Outbound
from strom.sessions import ledger
from strom.sessions.lifecycle import SessionService
from strom.sessions.model import REFUNDABLE_STATES, Session, State
from strom.store.db import Database
from strom.store.lightning import LightningRepository
from strom.store.refunds import RefundRepository
from strom.timeutil import parse_iso, utcnow

log = logging.getLogger(__name__)

# BOLT11 human-readable prefixes per network.
CURRENCY = {"mainnet": "bc", "testnet": "tb", "signet": "tbs", "regtest": "bcrt"}
LOOKUP_SECONDS = 10.0
FORFEIT_CHECK_SECONDS = 3600.0


class RefundError(Exception):
    """A refund request that cannot be served; the message is for the payer."""


class OwnInvoice(RefundError):
    """The invoice to pay was issued by strom itself."""


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    payment_hash: str
    amount_msat: int
    status: PaymentStatus


class RefundService:
    def __init__(self, *, db: Database, bus: EventBus, wallet: Wallet, sessions: SessionService,
                 settings: SessionSettings, network: str, max_fee_msat: int,
                 outbound: Outbound) -> None:
        self._db = db
        self._invoices = LightningRepository(db)
        self._refunds = RefundRepository(db)
        self._outbound = outbound
        self._bus = bus
        self._wallet = wallet
        self._sessions = sessions
        self._settings = settings
        self._currency = CURRENCY[network]
        self._max_fee_msat = max_fee_msat
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.recover()
        self._task = asyncio.create_task(self._housekeeping(), name="refunds:housekeeping")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- withdraw links ---------------------------------------------------------------------

    async def new_withdraw_link(self, session: Session) -> str:
        """A fresh k1 bound to `session`, for one withdrawRequest.

        Only the payer's token opens a withdrawRequest (`/lnurlw/{token}`, the charger's QR with
        `?s={token}`), so every link is recorded as issued through it; the ledger check ties
        each withdraw refund to such a link.
        """
        k1 = secrets.token_hex(32)
        async with self._db.transaction() as conn:
            await self._refunds.add_withdraw_link(conn, k1, session.id)
        return k1

    async def withdraw(self, session: Session, k1: str, invoice: str) -> RefundOutcome:
        """The LUD-03 callback: check everything, claim, then pay once."""
        decoded = await self._payable(invoice)
        amount = int(decoded.amount_msat or 0)
        async with self._db.transaction() as conn:
            links = await self._refunds.withdraw_links_in(conn, session.id)
            link = next((r for r in links if hmac.compare_digest(r["k1"], k1)), None)
            if link is None:
                raise RefundError("unknown withdraw link: open your stop & refund link again")
            if link["used_at"] is not None:
                raise RefundError("this withdraw link was already used; "
                                  "open your stop & refund link again for a new one")
            current = await self._sessions.repo.get_in(conn, session.id)
            assert current is not None
            if current.state not in REFUNDABLE_STATES:
                raise RefundError(f"the session is {current.state.value}; stop it first")
            if amount > current.refundable_msat:
                raise RefundError(f"the invoice asks {amount // 1000} sat but only "
                                  f"{current.refundable_msat // 1000} sat are refundable")
            if await self._refunds.exists_in(conn, decoded.payment_hash):
                raise RefundError("this invoice was already used for a refund")
            await self._refunds.use_withdraw_link(conn, link["k1"])
            await self._claim(conn, current, decoded.payment_hash, amount, invoice, "lnurlw",
                              route="withdraw_link", k1=link["k1"])
        crash_point("refund_in_flight")
        return await self._pay(session.id, decoded.payment_hash, amount, invoice)

    async def refund_to_address(self, session_id: str, address: str) -> RefundOutcome | None:
        """Send what is refundable to the payer's lightning address (zaps: their `lud16`).

        None when there is nothing to send; the amount is claimed exactly as a withdraw would,
        so a driver who also opens their withdraw link cannot get it twice.
        """
        session = await self._sessions.repo.get(session_id)
        if session is None or session.state not in REFUNDABLE_STATES \
                or session.refundable_msat <= 0 or session.payer_pubkey is None:
            return None  # (a lightning address is the route of zap payers only)
        amount = session.refundable_msat
        invoice = await invoice_for_address(address, amount, f"strom refund, session {session.id}",
                                            outbound=self._outbound)
        decoded = await self._payable(invoice)
        async with self._db.transaction() as conn:
            current = await self._sessions.repo.get_in(conn, session_id)
            assert current is not None
            if current.state not in REFUNDABLE_STATES or current.refundable_msat < amount:
                return None  # withdrawn meanwhile
            await self._claim(conn, current, decoded.payment_hash, amount, invoice, address,
                              route="payer_lud16")
        return await self._pay(session_id, decoded.payment_hash, amount, invoice)

    async def _payable(self, invoice: str) -> bolt11.Bolt11:
        """The decoded invoice, if strom may pay it: never one strom issued itself (paying it
        would only move the payer's money into a new session of ours, see issue 26)."""
        decoded = self._decode(invoice)
        if await self._invoices.invoice(decoded.payment_hash) is not None:
            raise OwnInvoice("this invoice was issued by strom itself; strom never pays itself")
        return decoded

    def _decode(self, invoice: str) -> bolt11.Bolt11:
        try:
            decoded = bolt11.decode(invoice)
        except Exception:
            raise RefundError("pr is not a valid BOLT11 invoice") from None
        if decoded.currency != self._currency:
            raise RefundError(f"invoice is for the wrong network (expected ln{self._currency}…)")
        if not decoded.amount_msat:
            raise RefundError("the invoice must name an amount")
        if decoded.has_expired():
            raise RefundError("the invoice has expired")
        return decoded

    # --- claim, pay, finish ------------------------------------------------------------------

    async def _claim(self, conn: aiosqlite.Connection, session: Session, payment_hash: str,
                     amount: int, invoice: str, destination: str, *, route: str,
                     k1: str | None = None) -> None:
        """Record the refund before paying it, with its route: the k1 of a withdraw link
        (`withdraw_link`) or the zap payer's lightning address (`payer_lud16`, remembered on
        the session), the session's state and whether the charger's final reading was in."""
        final_reading = await self._sessions.repo.final_reading_in(conn, session)
        await self._refunds.add_pending(
            conn, payment_hash=payment_hash, session_id=session.id,
            amount_msat=amount, bolt11=invoice, destination=destination, route=route, k1=k1,
            claimed_state=session.state.value, final_reading=final_reading)
        fields: dict[str, Any] = {"refunded_msat": session.refunded_msat + amount}
        if route == "payer_lud16":
            fields["payer_lud16"] = destination
        await self._sessions.repo.update(conn, session.id, **fields)
        await ledger.refund_paid(conn, session.id, amount, payment_hash)

    async def _pay(self, session_id: str, payment_hash: str, amount: int,
                   invoice: str) -> RefundOutcome:
        log.info("session %s: paying refund of %d msat", session_id, amount)
        try:
            result = await self._wallet.pay(invoice, max_fee_msat=self._max_fee_msat)
        except WalletError as exc:
            # Unknown outcome: the payment may be in flight. Look it up later; never re-pay.
            log.warning("session %s: refund payment state unknown (%s); will look it up",
                        session_id, exc)
            return RefundOutcome(payment_hash, amount, PaymentStatus.PENDING)
        await self._finish(payment_hash, result)
        return RefundOutcome(payment_hash, amount, result.status)

    async def _finish(self, payment_hash: str, result: PaymentResult) -> None:
        if result.status == PaymentStatus.PENDING:
            return
        async with self._db.transaction() as conn:
            refund = await self._refunds.pending_in(conn, payment_hash)
            if refund is None:
                return
            session = await self._sessions.repo.get_in(conn, refund["session_id"])
            assert session is not None
            if result.status == PaymentStatus.SUCCEEDED:
                await self._refunds.succeeded_in(conn, payment_hash, result.fee_msat)
                still_pending = await self._refunds.pending_count_in(conn, session.id)
                # An unconfirmed stop still holds money: it ends on the charger's final reading.
                if session.refundable_msat == 0 and session.held_msat == 0 and not still_pending \
                        and session.state in (State.STOPPED, State.FAILED):
                    await self._sessions.repo.update(conn, session.id, state=State.REFUNDED)
            else:
                await self._refunds.failed_in(conn, payment_hash, result.failure_reason)
                await self._sessions.repo.update(
                    conn, session.id, refunded_msat=session.refunded_msat - refund["amount_msat"])
                await ledger.refund_reversed(conn, session.id, refund["amount_msat"], payment_hash)
            session = await self._sessions.repo.get_in(conn, session.id)
        assert session is not None
        log.info("session %s: refund %s (%s)", session.id, result.status.value,
                 result.failure_reason or "ok")
        self._sessions.publish(session)

    # --- recovery and housekeeping -----------------------------------------------------------

    async def recover(self) -> None:
        """Look up refunds that were in flight; finish those the wallet has an answer for."""
        for row in await self._refunds.pending():
            try:
                result = await self._wallet.payment_status(row["payment_hash"])
                if result is None:
                    # Claimed, then a crash before the wallet saw it: paying now is safe,
                    # since the wallet pays an invoice at most once.
                    result = await self._wallet.pay(row["bolt11"],
                                                    max_fee_msat=self._max_fee_msat)
            except WalletError as exc:
                log.warning("refund %s: lookup failed: %s", row["payment_hash"][:16], exc)
                continue
            await self._finish(row["payment_hash"], result)

    async def forfeit_expired(self) -> int:
        """Record refunds left unclaimed past `refund_expiry_days` as forfeited."""
        cutoff = utcnow() - timedelta(days=self._settings.refund_expiry_days)
        count = 0
        for session in await self._sessions.repo.in_states(State.STOPPED, State.FAILED):
            ended = parse_iso(session.stopped_at or session.updated_at)
            if ended > cutoff or session.refundable_msat <= 0:
                continue
            async with self._db.transaction() as conn:
                current = await self._sessions.repo.get_in(conn, session.id)
                assert current is not None
                amount = current.refundable_msat
                if current.state not in (State.STOPPED, State.FAILED) or amount <= 0:
                    continue
                await self._sessions.repo.update(conn, session.id, state=State.SETTLED,
                                                 forfeited_msat=current.forfeited_msat + amount)
                await ledger.refund_forfeited(conn, session.id, amount)
            count += 1
            log.info("session %s: %d msat unclaimed for %d days, forfeited", session.id, amount,
                     self._settings.refund_expiry_days)
        return count

    async def _housekeeping(self) -> None:
        last_forfeit_check = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(LOOKUP_SECONDS)
            try:
                await self.recover()
                if loop.time() - last_forfeit_check > FORFEIT_CHECK_SECONDS:
                    last_forfeit_check = loop.time()
                    await self.forfeit_expired()
            except Exception:
                log.exception("refund housekeeping failed")
