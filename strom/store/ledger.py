"""SQL of the double-entry ledger (`0004_sessions.sql`); what the entries mean is
`strom/sessions/ledger.py`'s."""

from __future__ import annotations

import aiosqlite

from strom.store.db import Database
from strom.timeutil import iso


async def insert_entry(conn: aiosqlite.Connection, *, session_id: str, kind: str, debit: str,
                       credit: str, amount_msat: int, ref: str | None) -> None:
    """One entry, in the caller's transaction (`UNIQUE(kind, ref)` refuses a second)."""
    await conn.execute(
        "INSERT INTO ledger (at, session_id, kind, debit, credit, amount_msat, ref)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (iso(), session_id, kind, debit, credit, amount_msat, ref))


class LedgerRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def sums_by_kind(self, session_id: str) -> dict[str, int]:
        """The session's entries summed per kind, in msat."""
        rows = await self._db.fetchall(
            "SELECT kind, COALESCE(SUM(amount_msat), 0) AS total FROM ledger"
            " WHERE session_id = ? GROUP BY kind", (session_id,))
        return {r["kind"]: int(r["total"]) for r in rows}

    async def earned_since(self, since: str) -> dict[str, int]:
        """Energy sold per charge point since `since` (ISO), in msat."""
        rows = await self._db.fetchall(
            "SELECT s.cp_id AS cp_id, COALESCE(SUM(l.amount_msat), 0) AS total FROM ledger l"
            " JOIN sessions s ON s.id = l.session_id WHERE l.kind = 'energy_consumed'"
            " AND l.at >= ? GROUP BY s.cp_id", (since,))
        return {r["cp_id"]: int(r["total"]) for r in rows}

    async def duplicate_payment(self) -> tuple[str, int] | None:
        """(payment hash, times) of a payment recorded more than once, if any."""
        row = await self._db.fetchone(
            "SELECT ref, COUNT(*) FROM ledger WHERE kind = 'payment_received' GROUP BY ref"
            " HAVING COUNT(*) > 1")
        return (row[0], int(row[1])) if row else None
