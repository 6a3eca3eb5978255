"""SQL of refunds and withdraw links (`0004_sessions.sql`, `0010_capabilities.sql`).

Writes take the connection of an open transaction: a refund is claimed together with the
session's columns and its ledger entries (`strom/sessions/refunds.py`).
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from strom.store.db import Database
from strom.timeutil import iso


class RefundRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- withdraw links ---------------------------------------------------------------------

    async def add_withdraw_link(self, conn: aiosqlite.Connection, k1: str,
                                session_id: str) -> None:
        """A k1 issued through the payer's token (the only way one is issued)."""
        await conn.execute(
            "INSERT INTO withdraw_links (k1, session_id, created_at, issued_via)"
            " VALUES (?, ?, ?, 'payer_token')", (k1, session_id, iso()))

    async def withdraw_links_in(self, conn: aiosqlite.Connection,
                                session_id: str) -> list[dict[str, Any]]:
        """The session's links as `{k1, used_at}`: the caller compares k1s in constant time."""
        cursor = await conn.execute(
            "SELECT k1, used_at FROM withdraw_links WHERE session_id = ?", (session_id,))
        return [dict(r) for r in await cursor.fetchall()]

    async def use_withdraw_link(self, conn: aiosqlite.Connection, k1: str) -> None:
        await conn.execute("UPDATE withdraw_links SET used_at = ? WHERE k1 = ?", (iso(), k1))

    # --- refunds ----------------------------------------------------------------------------

    async def exists_in(self, conn: aiosqlite.Connection, payment_hash: str) -> bool:
        """Whether an invoice was ever used for a refund (whatever became of it)."""
        cursor = await conn.execute("SELECT 1 FROM refunds WHERE payment_hash = ?",
                                    (payment_hash,))
        return await cursor.fetchone() is not None

    async def add_pending(self, conn: aiosqlite.Connection, *, payment_hash: str,
                          session_id: str, amount_msat: int, bolt11: str, destination: str,
                          route: str, k1: str | None, claimed_state: str,
                          final_reading: bool) -> None:
        """Record a refund as claimed (`pending`), before it is paid."""
        await conn.execute(
            "INSERT INTO refunds (payment_hash, session_id, amount_msat, bolt11, destination,"
            " state, created_at, route, k1, claimed_state, final_reading)"
            " VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
            (payment_hash, session_id, amount_msat, bolt11, destination, iso(), route, k1,
             claimed_state, int(final_reading)))

    async def pending_in(self, conn: aiosqlite.Connection,
                         payment_hash: str) -> dict[str, Any] | None:
        cursor = await conn.execute(
            "SELECT * FROM refunds WHERE payment_hash = ? AND state = 'pending'", (payment_hash,))
        row = await cursor.fetchone()
        return dict(row) if row else None

    async def pending_count_in(self, conn: aiosqlite.Connection, session_id: str) -> int:
        cursor = await conn.execute(
            "SELECT COUNT(*) FROM refunds WHERE session_id = ? AND state = 'pending'",
            (session_id,))
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def succeeded_in(self, conn: aiosqlite.Connection, payment_hash: str,
                           fee_msat: int) -> None:
        await conn.execute(
            "UPDATE refunds SET state = 'succeeded', fee_msat = ?, finished_at = ?"
            " WHERE payment_hash = ?", (fee_msat, iso(), payment_hash))

    async def failed_in(self, conn: aiosqlite.Connection, payment_hash: str,
                        reason: str | None) -> None:
        await conn.execute(
            "UPDATE refunds SET state = 'failed', failure_reason = ?, finished_at = ?"
            " WHERE payment_hash = ?", (reason, iso(), payment_hash))

    async def pending(self) -> list[dict[str, Any]]:
        """`{payment_hash, bolt11}` of every refund whose payment has no known outcome."""
        rows = await self._db.fetchall(
            "SELECT payment_hash, bolt11 FROM refunds WHERE state = 'pending'")
        return [dict(r) for r in rows]

    # --- for `strom ledger check` (strom/sessions/audit.py) ---------------------------------

    async def live_total(self, session_id: str) -> int:
        """What the session's pending and succeeded refunds add up to, in msat."""
        row = await self._db.fetchone(
            "SELECT COALESCE(SUM(amount_msat), 0) FROM refunds WHERE session_id = ?"
            " AND state IN ('pending', 'succeeded')", (session_id,))
        return int(row[0]) if row else 0

    async def unlike_wallet(self) -> list[dict[str, Any]]:
        """`{payment_hash, ours, wallet}` of refunds whose state and the wallet's payment
        disagree on success."""
        rows = await self._db.fetchall(
            "SELECT r.payment_hash, r.state AS ours, p.status AS wallet FROM refunds r"
            " JOIN ln_payments p ON p.payment_hash = r.payment_hash"
            " WHERE p.status = 'succeeded' AND r.state != 'succeeded'"
            " OR r.state = 'succeeded' AND p.status != 'succeeded'")
        return [dict(r) for r in rows]

    async def routes(self, session_id: str) -> list[dict[str, Any]]:
        """The session's pending and succeeded refunds that recorded a route, each with the
        withdraw link it used (`link_session`, `issued_via`, `used_at`; None for none)."""
        rows = await self._db.fetchall(
            "SELECT r.payment_hash, r.amount_msat, r.destination, r.route, r.claimed_state,"
            " r.final_reading, w.session_id AS link_session, w.issued_via, w.used_at"
            " FROM refunds r LEFT JOIN withdraw_links w ON w.k1 = r.k1"
            " WHERE r.session_id = ? AND r.state IN ('pending', 'succeeded')"
            " AND r.route IS NOT NULL", (session_id,))
        return [dict(r) for r in rows]
