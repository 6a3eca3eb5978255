"""Unpaid invoices expire and are purged, and so are the sessions that never got money.

Anyone may ask for an invoice (an LNURL callback needs no credential), and each one writes a
pending session. Past its expiry plus `[sessions] unpaid_grace_seconds`, an unpaid invoice is
checked with the wallet before anything is deleted:

- the wallet says it was paid (the payment event was missed, e.g. in a crash): the payment
  is applied as if it had just arrived, so it is honoured or refundable, never lost;
- the wallet says it is expired, or does not know it: no one can pay it any more, so the
  invoice, its zap request and the wallet's record of it are deleted;
- the wallet still takes payments for it, or cannot be asked: it stays for the next round.

A session that never received money and has no invoice left (pending, or failed before an
invoice existed) is deleted with its withdraw links. Sessions with money, ledger entries or a
paid invoice are never touched, so the money invariant and `strom ledger check` are as before.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiosqlite

from strom.lightning.wallet import InvoiceState, Wallet, WalletError
from strom.sessions.repository import SessionRepository
from strom.store.db import Database
from strom.timeutil import iso, utcnow

log = logging.getLogger(__name__)

BATCH = 200  # invoices or sessions per transaction-sized step; the loop goes on while full


class UnpaidPurger:
    """`await purge()` once, or `run(interval)` forever."""

    def __init__(self, *, db: Database, repo: SessionRepository, wallet: Wallet,
                 on_paid: Callable[[str, int], Awaitable[None]], invoice_expiry: float,
                 grace_seconds: float) -> None:
        self._db = db
        self._repo = repo
        self._wallet = wallet
        self._on_paid = on_paid
        self._invoice_expiry = invoice_expiry
        self._grace = grace_seconds

    async def run(self, interval: float) -> None:
        """Purge every `interval` seconds; a failed round is logged and tried again."""
        while True:
            try:
                await self.purge()
            except Exception:
                log.exception("sessions: purging unpaid invoices failed")
            await asyncio.sleep(interval)

    async def purge(self) -> tuple[int, int]:
        """One round; returns (invoices deleted, sessions deleted)."""
        invoices = sessions = 0
        cutoff = iso(utcnow() - timedelta(seconds=self._grace))
        # Page by position, so what stays (still payable, wallet unreachable) is asked about
        # once per round and never hides the rest.
        after = ("", "")
        while batch := await self._repo.unpaid_expired_before(cutoff, BATCH, after):
            for invoice in batch:
                invoices += await self._settle_or_forget(invoice)
            after = (batch[-1]["expires_at"], batch[-1]["payment_hash"])
        # A session is created just before its invoice: this old, it could have had one.
        created = iso(utcnow() - timedelta(seconds=self._invoice_expiry + self._grace))
        after = ("", "")
        while page := await self._repo.moneyless_before(created, BATCH, after):
            for _, session_id in page:
                sessions += await self._forget(self._repo.forget_moneyless, session_id)
            after = page[-1]
        if invoices or sessions:
            log.info("sessions: purged %d unpaid invoice(s) and %d session(s) without money",
                     invoices, sessions)
        return invoices, sessions

    async def _settle_or_forget(self, invoice: dict[str, object]) -> bool:
        payment_hash = str(invoice["payment_hash"])
        try:
            status = await self._wallet.invoice_status(payment_hash)
        except WalletError as exc:
            log.info("sessions: invoice %s kept, the wallet cannot say if it was paid: %s",
                     payment_hash[:16], exc)
            return False
        if status is not None and status.state == InvoiceState.PAID:
            log.warning("sessions: invoice %s was paid without us hearing of it; applying it",
                        payment_hash[:16])
            await self._on_paid(payment_hash, status.amount_msat)
            return False
        if status is not None and status.state == InvoiceState.OPEN:
            return False  # the wallet would still accept a payment
        return await self._forget(self._repo.forget_unpaid_invoice, payment_hash)

    async def _forget(self, forget: Callable[[aiosqlite.Connection, str], Awaitable[bool]],
                      key: str) -> bool:
        """Delete in one transaction; a row this module does not know still referring to it
        (a foreign key) keeps it, which is always safe."""
        try:
            async with self._db.transaction() as conn:
                return await forget(conn, key)
        except sqlite3.IntegrityError as exc:
            log.warning("sessions: %s kept, other records refer to it: %s", key[:16], exc)
            return False
