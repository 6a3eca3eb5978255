"""The double-entry money ledger, written in the same transaction as each state change.

Accounts: `wallet` (our lightning balance), `session:<id>` (what a payer has prepaid and not
yet used or got back), `revenue` (energy, fees and time sold), `forfeited` (unclaimed refunds).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from strom.store.db import Database
from strom.store.ledger import LedgerRepository, insert_entry

WALLET = "wallet"
REVENUE = "revenue"
FORFEITED = "forfeited"


def session_account(session_id: str) -> str:
    return f"session:{session_id}"


async def post(conn: aiosqlite.Connection, *, session_id: str, kind: str, debit: str, credit: str,
               amount_msat: int, ref: str | None = None) -> None:
    """One movement of `amount_msat` from `credit` to `debit` (nothing for a zero amount)."""
    if amount_msat == 0:
        return
    await insert_entry(conn, session_id=session_id, kind=kind, debit=debit, credit=credit,
                       amount_msat=amount_msat, ref=ref)


async def payment_received(conn: aiosqlite.Connection, session_id: str, amount_msat: int,
                           payment_hash: str) -> None:
    await post(conn, session_id=session_id, kind="payment_received", debit=WALLET,
               credit=session_account(session_id), amount_msat=amount_msat, ref=payment_hash)


async def energy_consumed(conn: aiosqlite.Connection, session_id: str, amount_msat: int) -> None:
    await post(conn, session_id=session_id, kind="energy_consumed",
               debit=session_account(session_id), credit=REVENUE, amount_msat=amount_msat)


async def reservation_fee(conn: aiosqlite.Connection, session_id: str, amount_msat: int) -> None:
    """A reservation that expired unused: its fee is the operator's (counts as consumed)."""
    await post(conn, session_id=session_id, kind="reservation_fee",
               debit=session_account(session_id), credit=REVENUE, amount_msat=amount_msat,
               ref=f"reservation:{session_id}")


@dataclass(frozen=True, slots=True)
class SessionTotals:
    received_msat: int
    consumed_msat: int
    refunded_msat: int
    forfeited_msat: int


async def totals(db: Database, session_id: str) -> SessionTotals:
    by_kind = await LedgerRepository(db).sums_by_kind(session_id)
    return SessionTotals(
        received_msat=by_kind.get("payment_received", 0),
        consumed_msat=by_kind.get("energy_consumed", 0) + by_kind.get("reservation_fee", 0),
        refunded_msat=by_kind.get("refund_paid", 0) - by_kind.get("refund_reversed", 0),
        forfeited_msat=by_kind.get("refund_forfeited", 0))


async def refund_paid(conn: aiosqlite.Connection, session_id: str, amount_msat: int,
                      payment_hash: str) -> None:
    await post(conn, session_id=session_id, kind="refund_paid",
               debit=session_account(session_id), credit=WALLET, amount_msat=amount_msat,
               ref=payment_hash)


async def refund_reversed(conn: aiosqlite.Connection, session_id: str, amount_msat: int,
                          payment_hash: str) -> None:
    """A refund payment failed: the amount is the payer's again."""
    await post(conn, session_id=session_id, kind="refund_reversed", debit=WALLET,
               credit=session_account(session_id), amount_msat=amount_msat, ref=payment_hash)


async def refund_forfeited(conn: aiosqlite.Connection, session_id: str, amount_msat: int) -> None:
    await post(conn, session_id=session_id, kind="refund_forfeited",
               debit=session_account(session_id), credit=FORFEITED, amount_msat=amount_msat,
               ref=f"forfeit:{session_id}")
