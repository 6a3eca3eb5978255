"""Repository of lightning invoices (money in), payments (money out) and stream cursors.

The two transitions money depends on are single guarded statements inside a transaction:
`mark_paid` turns an invoice paid once (its caller publishes `InvoicePaid` only when it did),
and `claim_payment` lets exactly one caller send a given payment hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiosqlite

from strom.store.db import Database
from strom.timeutil import iso


@dataclass(frozen=True, slots=True)
class StoredInvoice:
    payment_hash: str
    backend: str
    bolt11: str
    amount_msat: int
    description: str | None
    description_hash: str | None
    state: str
    preimage: str | None
    received_msat: int | None
    created_at: str
    expires_at: str
    paid_at: str | None


@dataclass(frozen=True, slots=True)
class StoredPayment:
    payment_hash: str
    backend: str
    bolt11: str
    amount_msat: int
    fee_msat: int
    status: str
    failure_reason: str | None
    preimage: str | None
    attempts: int
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer of `claim_payment`: whether this caller may send, and the row as it is now."""

    granted: bool
    payment: StoredPayment
    retry: bool = False  # granted for a hash that was tried before (look it up before sending)


def _invoice(row: Any) -> StoredInvoice:
    return StoredInvoice(**dict(row))


def _payment(row: Any) -> StoredPayment:
    return StoredPayment(**dict(row))


class LightningRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- invoices ---------------------------------------------------------------------------

    async def add_invoice(self, *, payment_hash: str, backend: str, bolt11: str,
                          amount_msat: int, expires_at: str, description: str | None = None,
                          description_hash: str | None = None,
                          preimage: str | None = None) -> None:
        """Record an invoice we issued (state open)."""
        await self._db.execute(
            "INSERT INTO ln_invoices (payment_hash, backend, bolt11, amount_msat, description,"
            " description_hash, preimage, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (payment_hash, backend, bolt11, amount_msat, description, description_hash,
             preimage, iso(), expires_at))

    async def invoice(self, payment_hash: str) -> StoredInvoice | None:
        row = await self._db.fetchone("SELECT * FROM ln_invoices WHERE payment_hash = ?",
                                      (payment_hash,))
        return _invoice(row) if row else None

    async def invoice_by_bolt11(self, bolt11: str) -> StoredInvoice | None:
        """The invoice issued as exactly this (lower-case) string."""
        row = await self._db.fetchone("SELECT * FROM ln_invoices WHERE bolt11 = ?", (bolt11,))
        return _invoice(row) if row else None

    async def open_invoices(self, backend: str) -> list[StoredInvoice]:
        rows = await self._db.fetchall(
            "SELECT * FROM ln_invoices WHERE backend = ? AND state = 'open' ORDER BY created_at",
            (backend,))
        return [_invoice(r) for r in rows]

    async def mark_paid(self, payment_hash: str, *, received_msat: int, preimage: str,
                        paid_at: str, backend: str) -> StoredInvoice | None:
        """Turn one of `backend`'s invoices paid; None when it is unknown or was paid already.

        An invoice we took for expired may still be paid: the backend's word beats our clock.
        """
        async def mark(conn: aiosqlite.Connection) -> StoredInvoice | None:
            cursor = await conn.execute(
                "UPDATE ln_invoices SET state = 'paid', received_msat = ?, preimage = ?,"
                " paid_at = ? WHERE payment_hash = ? AND backend = ? AND state != 'paid'",
                (received_msat, preimage, paid_at, payment_hash, backend))
            if cursor.rowcount != 1:
                return None
            cursor = await conn.execute("SELECT * FROM ln_invoices WHERE payment_hash = ?",
                                        (payment_hash,))
            return _invoice(await cursor.fetchone())

        # A group commit's unit: many payments arriving at once share one transaction.
        return await self._db.run(mark)

    async def mark_expired(self, payment_hash: str) -> bool:
        """Mark an open invoice expired; False when it is not open (e.g. paid meanwhile)."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE ln_invoices SET state = 'expired' WHERE payment_hash = ? AND state = 'open'",
                (payment_hash,))
            return cursor.rowcount == 1

    async def expire_overdue(self, backend: str, now: str) -> int:
        """Mark every open invoice of `backend` past its expiry as expired."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE ln_invoices SET state = 'expired'"
                " WHERE backend = ? AND state = 'open' AND expires_at <= ?", (backend, now))
            return cursor.rowcount

    async def invoices(self, limit: int = 1000) -> list[StoredInvoice]:
        rows = await self._db.fetchall(
            "SELECT * FROM ln_invoices ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_invoice(r) for r in rows]

    # --- payments ---------------------------------------------------------------------------

    async def claim_payment(self, *, payment_hash: str, backend: str, bolt11: str,
                            amount_msat: int) -> Claim:
        """Reserve the right to send this payment hash.

        Granted for a new hash and for one whose earlier attempt failed (no money moved);
        refused while it is pending or once it succeeded — the caller must not send then.
        """
        now = iso()
        async with self._db.transaction() as conn:
            cursor = await conn.execute("SELECT * FROM ln_payments WHERE payment_hash = ?",
                                        (payment_hash,))
            row = await cursor.fetchone()
            if row is None:
                await conn.execute(
                    "INSERT INTO ln_payments (payment_hash, backend, bolt11, amount_msat, status,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (payment_hash, backend, bolt11, amount_msat, now, now))
                granted, retry = True, False
            elif row["status"] == "failed":
                await conn.execute(
                    "UPDATE ln_payments SET status = 'pending', failure_reason = NULL,"
                    " attempts = attempts + 1, updated_at = ? WHERE payment_hash = ?",
                    (now, payment_hash))
                granted, retry = True, True
            else:
                return Claim(False, _payment(row))
            cursor = await conn.execute("SELECT * FROM ln_payments WHERE payment_hash = ?",
                                        (payment_hash,))
            return Claim(granted, _payment(await cursor.fetchone()), retry)

    async def finish_payment(self, payment_hash: str, *, status: str, fee_msat: int = 0,
                             preimage: str | None = None,
                             failure_reason: str | None = None) -> StoredPayment | None:
        """Record the outcome of a pending payment; a succeeded one stays succeeded."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE ln_payments SET status = ?, fee_msat = ?, preimage = ?,"
                " failure_reason = ?, updated_at = ? WHERE payment_hash = ? AND status = 'pending'",
                (status, fee_msat, preimage, failure_reason, iso(), payment_hash))
            cursor = await conn.execute("SELECT * FROM ln_payments WHERE payment_hash = ?",
                                        (payment_hash,))
            row = await cursor.fetchone()
            return _payment(row) if row else None

    async def record_final(self, *, payment_hash: str, backend: str, bolt11: str,
                           amount_msat: int, status: str, failure_reason: str | None = None,
                           ) -> StoredPayment:
        """Record a payment decided on the spot (a refusal, the dev wallet), in one step.

        A row that is pending or succeeded wins and is returned unchanged; a failed one is
        overwritten (another attempt).
        """
        now = iso()
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO ln_payments (payment_hash, backend, bolt11, amount_msat, status,"
                " failure_reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (payment_hash) DO UPDATE SET status = excluded.status,"
                " failure_reason = excluded.failure_reason, attempts = attempts + 1,"
                " updated_at = excluded.updated_at WHERE ln_payments.status = 'failed'",
                (payment_hash, backend, bolt11, amount_msat, status, failure_reason, now, now))
            cursor = await conn.execute("SELECT * FROM ln_payments WHERE payment_hash = ?",
                                        (payment_hash,))
            return _payment(await cursor.fetchone())

    async def payment(self, payment_hash: str) -> StoredPayment | None:
        row = await self._db.fetchone("SELECT * FROM ln_payments WHERE payment_hash = ?",
                                      (payment_hash,))
        return _payment(row) if row else None

    async def payments(self, limit: int = 1000) -> list[StoredPayment]:
        rows = await self._db.fetchall(
            "SELECT * FROM ln_payments ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_payment(r) for r in rows]

    async def pending_payments(self, backend: str) -> list[StoredPayment]:
        rows = await self._db.fetchall(
            "SELECT * FROM ln_payments WHERE backend = ? AND status = 'pending'", (backend,))
        return [_payment(r) for r in rows]

    # --- totals and cursors -----------------------------------------------------------------

    async def totals(self, backend: str) -> tuple[int, int, int]:
        """(received, paid out, fees) in msat; pending payments count as spent."""
        received = await self._db.fetchone(
            "SELECT COALESCE(SUM(received_msat), 0) FROM ln_invoices"
            " WHERE backend = ? AND state = 'paid'", (backend,))
        spent = await self._db.fetchone(
            "SELECT COALESCE(SUM(amount_msat), 0), COALESCE(SUM(fee_msat), 0) FROM ln_payments"
            " WHERE backend = ? AND status IN ('pending', 'succeeded')", (backend,))
        assert received is not None and spent is not None
        return int(received[0]), int(spent[0]), int(spent[1])

    async def cursor(self, name: str) -> int:
        row = await self._db.fetchone("SELECT value FROM ln_cursors WHERE backend = ?", (name,))
        return int(row[0]) if row else 0

    async def advance_cursor(self, name: str, value: int) -> None:
        """Move a stream cursor forward (never back, whatever order updates arrive in)."""
        await self._db.execute(
            "INSERT INTO ln_cursors (backend, value) VALUES (?, ?) ON CONFLICT (backend)"
            " DO UPDATE SET value = MAX(value, excluded.value)", (name, value))
