"""Extra transactions: ones a charger started with a session's idTag while that session
already had its own (`extra_transactions`, 0025). strom stops them and reports their energy to
the operator as unbilled; the charger's own record of them is the `ocpp_transactions` row."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from strom.store.db import Database
from strom.timeutil import iso


@dataclass(frozen=True, slots=True)
class ExtraTransaction:
    transaction_id: int
    session_id: str
    cp_id: str
    connector_id: int
    meter_start_wh: float
    meter_stop_wh: float | None  # None while the charger has not stopped it

    @property
    def open(self) -> bool:
        return self.meter_stop_wh is None

    @property
    def energy_wh(self) -> float | None:
        """What the charger reported delivering, once it stopped (never negative)."""
        if self.meter_stop_wh is None:
            return None
        return max(0.0, self.meter_stop_wh - self.meter_start_wh)


_SELECT = ("SELECT e.transaction_id, e.session_id, t.cp_id, t.connector_id, t.meter_start_wh,"
           " t.meter_stop_wh FROM extra_transactions e"
           " JOIN ocpp_transactions t ON t.id = e.transaction_id")


class ExtraTransactionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    async def note_in(conn: aiosqlite.Connection, transaction_id: int, session_id: str) -> None:
        """Record an extra transaction (once), inside the caller's store transaction."""
        await conn.execute(
            "INSERT OR IGNORE INTO extra_transactions (transaction_id, session_id, noted_at)"
            " VALUES (?, ?, ?)", (transaction_id, session_id, iso()))

    async def get(self, transaction_id: int) -> ExtraTransaction | None:
        row = await self._db.fetchone(f"{_SELECT} WHERE e.transaction_id = ?",
                                      (transaction_id,))
        return ExtraTransaction(*row) if row else None

    async def open(self) -> list[ExtraTransaction]:
        """Those the charger has not stopped yet, oldest first."""
        rows = await self._db.fetchall(f"{_SELECT} WHERE t.stopped_at IS NULL"
                                       " ORDER BY e.transaction_id")
        return [ExtraTransaction(*r) for r in rows]

    async def all(self) -> list[ExtraTransaction]:
        rows = await self._db.fetchall(f"{_SELECT} ORDER BY e.transaction_id")
        return [ExtraTransaction(*r) for r in rows]
