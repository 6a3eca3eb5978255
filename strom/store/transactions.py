"""Repository of OCPP transactions and meter values."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from strom.store.db import Database


@dataclass(frozen=True, slots=True)
class Transaction:
    id: int
    cp_id: str
    connector_id: int
    id_tag: str
    meter_start_wh: float
    started_at: str
    auth_status: str
    meter_stop_wh: float | None
    stopped_at: str | None
    stop_reason: str | None
    charger_tx_id: str | None = None  # OCPP 2.0.1: the charger's own name of it
    seq_no: int | None = None  # OCPP 2.0.1: the last TransactionEvent seqNo applied

    @property
    def open(self) -> bool:
        return self.stopped_at is None


@dataclass(frozen=True, slots=True)
class MeterRow:
    """One sampled value as the charger sent it (value already in the unit named)."""

    connector_id: int
    transaction_id: int | None
    at: str
    measurand: str
    value: float
    unit: str
    context: str | None = None
    phase: str | None = None
    location: str | None = None


def _tx(row: Any) -> Transaction:
    return Transaction(row["id"], row["cp_id"], row["connector_id"], row["id_tag"],
                       row["meter_start_wh"], row["started_at"], row["auth_status"],
                       row["meter_stop_wh"], row["stopped_at"], row["stop_reason"],
                       row["charger_tx_id"], row["seq_no"])


class TransactionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, cp_id: str, *, connector_id: int, id_tag: str, meter_start_wh: float,
                    started_at: str, auth_status: str,
                    reservation_id: int | None = None) -> tuple[Transaction, bool]:
        """Record a StartTransaction; returns (transaction, created).

        A retried StartTransaction (same charger, connector, idTag and timestamp) returns the
        transaction recorded the first time, with `created` False.
        """
        row, created = await self._insert_once(
            "(cp_id, connector_id, id_tag, meter_start_wh, started_at, reservation_id,"
            " auth_status) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (cp_id, connector_id, id_tag, started_at) DO NOTHING",
            (cp_id, connector_id, id_tag, meter_start_wh, started_at, reservation_id,
             auth_status),
            "cp_id = ? AND connector_id = ? AND id_tag = ? AND started_at = ?",
            (cp_id, connector_id, id_tag, started_at))
        return _tx(row), created

    async def start_named(self, cp_id: str, charger_tx_id: str, *, connector_id: int,
                          id_tag: str, meter_start_wh: float, started_at: str, auth_status: str,
                          seq_no: int) -> tuple[Transaction, bool]:
        """Record an OCPP 2.0.1 transaction the charger calls `charger_tx_id`; returns
        (transaction, created). strom's integer id is what sessions and the ledger use."""
        row, created = await self._insert_once(
            "(cp_id, connector_id, id_tag, meter_start_wh, started_at, auth_status,"
            " charger_tx_id, seq_no) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (cp_id, connector_id, id_tag, meter_start_wh, started_at, auth_status,
             charger_tx_id, seq_no),
            "cp_id = ? AND charger_tx_id = ?", (cp_id, charger_tx_id))
        if row is None:  # another transaction of the same tag, connector and second
            raise ValueError(f"transaction {charger_tx_id!r} of {cp_id} collides with another")
        return _tx(row), created

    async def _insert_once(self, insert: str, values: tuple[Any, ...], where: str,
                           keys: tuple[Any, ...]) -> tuple[Any, bool]:
        """Insert a transaction unless its retry is already stored (the INSERT says ON
        CONFLICT DO NOTHING); the stored row found by `where` (None if another row took the
        conflict) and whether this call created it."""
        async def insert_once(conn: aiosqlite.Connection) -> tuple[Any, bool]:
            cursor = await conn.execute(f"INSERT INTO ocpp_transactions {insert}", values)
            created = cursor.rowcount == 1
            cursor = await conn.execute(f"SELECT * FROM ocpp_transactions WHERE {where}", keys)
            return await cursor.fetchone(), created

        # A group commit's unit: chargers starting together share one transaction.
        return await self._db.run(insert_once)

    async def named(self, cp_id: str, charger_tx_id: str) -> Transaction | None:
        """The OCPP 2.0.1 transaction the charger calls `charger_tx_id`."""
        row = await self._db.fetchone(
            "SELECT * FROM ocpp_transactions WHERE cp_id = ? AND charger_tx_id = ?",
            (cp_id, charger_tx_id))
        return _tx(row) if row else None

    def note_seq_no(self, transaction_id: int, seq_no: int) -> None:
        """The last seqNo applied (batched with the next commit)."""
        self._db.write_soon("UPDATE ocpp_transactions SET seq_no = ? WHERE id = ?",
                            [(seq_no, transaction_id)])

    async def stop(self, cp_id: str, transaction_id: int, *, meter_stop_wh: float,
                   stopped_at: str, reason: str, id_tag: str | None) -> Transaction | None:
        """Record a StopTransaction; None when the transaction is unknown or already stopped."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE ocpp_transactions SET meter_stop_wh = ?, stopped_at = ?, stop_reason = ?,"
                " stop_id_tag = ? WHERE id = ? AND cp_id = ? AND stopped_at IS NULL",
                (meter_stop_wh, stopped_at, reason, id_tag, transaction_id, cp_id))
            changed = cursor.rowcount == 1
        return await self.get(transaction_id) if changed else None

    async def get(self, transaction_id: int) -> Transaction | None:
        row = await self._db.fetchone("SELECT * FROM ocpp_transactions WHERE id = ?",
                                      (transaction_id,))
        return _tx(row) if row else None

    async def open_for(self, cp_id: str) -> list[Transaction]:
        rows = await self._db.fetchall(
            "SELECT * FROM ocpp_transactions WHERE cp_id = ? AND stopped_at IS NULL ORDER BY id",
            (cp_id,))
        return [_tx(r) for r in rows]

    async def list(self, cp_id: str | None = None, limit: int = 100) -> list[Transaction]:
        if cp_id is None:
            rows = await self._db.fetchall(
                "SELECT * FROM ocpp_transactions ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._db.fetchall(
                "SELECT * FROM ocpp_transactions WHERE cp_id = ? ORDER BY id DESC LIMIT ?",
                (cp_id, limit))
        return [_tx(r) for r in rows]

    def add_meter_values(self, cp_id: str, rows: Iterable[MeterRow]) -> int:
        """Queue the charger's readings for the next batch commit (sessions bill from the
        published `MeterSample`, not from these rows)."""
        params = [(cp_id, r.connector_id, r.transaction_id, r.at, r.measurand, r.value, r.unit,
                   r.context, r.phase, r.location) for r in rows]
        if params:
            self._db.write_soon(
                "INSERT INTO meter_values (cp_id, connector_id, transaction_id, at, measurand,"
                " value, unit, context, phase, location) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params)
        return len(params)

    async def meter_values(self, transaction_id: int) -> builtins.list[MeterRow]:
        """Every reading of a transaction, oldest first (the rows queued so far are committed
        first, so a meter rebuilt from them misses none)."""
        await self._db.flushed()
        rows = await self._db.fetchall(
            "SELECT * FROM meter_values WHERE transaction_id = ? ORDER BY at, id",
            (transaction_id,))
        return [MeterRow(r["connector_id"], r["transaction_id"], r["at"], r["measurand"],
                         r["value"], r["unit"], r["context"], r["phase"], r["location"])
                for r in rows]
