"""Repository of refunds to payers' lightning addresses: their tries, kept across restarts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strom.store.db import Database
from strom.timeutil import iso


@dataclass(frozen=True, slots=True)
class AddressRefund:
    session_id: str
    address: str
    attempts: int
    state: str  # 'trying', 'done' (sent, or nothing left to send) or 'abandoned'
    next_at: str | None
    last_error: str | None


class AddressRefundRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(self, session_id: str, address: str) -> AddressRefund:
        """The record of `session_id`, created (due now) the first time."""
        now = iso()
        await self._db.execute(
            "INSERT INTO address_refunds (session_id, address, state, next_at, updated_at)"
            " VALUES (?, ?, 'trying', ?, ?) ON CONFLICT (session_id) DO NOTHING",
            (session_id, address, now, now))
        found = await self.get(session_id)
        assert found is not None
        return found

    async def get(self, session_id: str) -> AddressRefund | None:
        row = await self._db.fetchone("SELECT * FROM address_refunds WHERE session_id = ?",
                                      (session_id,))
        return _refund(row) if row else None

    async def begin_attempt(self, session_id: str, due_before: str,
                            next_at: str) -> AddressRefund | None:
        """Count one try (before it is made, so a crash cannot hide it) if one is due."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE address_refunds SET attempts = attempts + 1, next_at = ?, updated_at = ?"
                " WHERE session_id = ? AND state = 'trying' AND next_at <= ?",
                (next_at, iso(), session_id, due_before))
            if cursor.rowcount != 1:
                return None
        return await self.get(session_id)

    async def finish(self, session_id: str, state: str, error: str | None = None) -> bool:
        """Move a 'trying' record to `state`; False when it had already left 'trying'."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE address_refunds SET state = ?, last_error = ?, next_at = NULL,"
                " updated_at = ? WHERE session_id = ? AND state = 'trying'",
                (state, error, iso(), session_id))
            return cursor.rowcount == 1

    async def note_error(self, session_id: str, error: str) -> None:
        await self._db.execute(
            "UPDATE address_refunds SET last_error = ?, updated_at = ? WHERE session_id = ?",
            (error, iso(), session_id))

    async def trying(self) -> list[AddressRefund]:
        rows = await self._db.fetchall(
            "SELECT * FROM address_refunds WHERE state = 'trying' ORDER BY next_at")
        return [_refund(r) for r in rows]


def _refund(row: Any) -> AddressRefund:
    return AddressRefund(row["session_id"], row["address"], row["attempts"], row["state"],
                         row["next_at"], row["last_error"])
