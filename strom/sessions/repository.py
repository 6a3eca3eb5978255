"""SQL for sessions and their invoices. Writes take the connection of an open transaction."""

from __future__ import annotations

import builtins
import json
from typing import Any

import aiosqlite

from strom.sessions import states
from strom.sessions.model import ENDED_STATES, HOLDING_STATES, Session, State
from strom.store.db import Database
from strom.tariffs.model import Tariff
from strom.timeutil import iso

_EDITABLE = {
    "state", "active_connector_id", "paid_msat", "consumed_msat", "refunded_msat",
    "forfeited_msat", "held_msat", "unbilled_msat", "max_power_w", "last_reading_at", "energy_wh", "power_w", "soc_percent", "meter_start_wh", "transaction_id",
    "payer_pubkey", "payer_lud16", "paid_at", "start_requested_at", "started_at", "stopped_at",
    "stop_reason", "failure_reason", "rate_msat_per_kwh", "rate_since_wh", "rated_msat",
    "reserved_until",
}
# Paid in the wallet's books but not in the session's, and sessions in one state (`paid`).
# CROSS JOIN keeps SQLite's order: the few unpaid session invoices (a partial index) first,
# then each one's wallet row by its key — never a scan of every invoice ever paid.
STRANDED_SQL = (
    "SELECT 'invoice', i.payment_hash, l.received_msat FROM session_invoices i"
    " CROSS JOIN ln_invoices l ON l.payment_hash = i.payment_hash"
    " WHERE i.paid_at IS NULL AND l.state = 'paid'"
    " UNION ALL SELECT 'session', id, 0 FROM sessions WHERE state = ?")


def _row(row: Any) -> Session:
    data = dict(row)
    data["state"] = State(data["state"])
    data["tariff"] = Tariff.from_json(json.loads(data.pop("tariff_json")))
    return Session(**data)


class SessionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, conn: aiosqlite.Connection, s: Session) -> None:
        await conn.execute(
            "INSERT INTO sessions (id, token, view_token, topup_token, cp_id, connector_id,"
            " id_tag, state, tariff_json, payer_pubkey, payer_lud16, comment, created_at,"
            " updated_at, active_connector_id, reservation_fee_msat, reservation_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (s.id, s.token, s.view_token, s.topup_token, s.cp_id, s.connector_id, s.id_tag,
             s.state.value, json.dumps(s.tariff.to_json()), s.payer_pubkey, s.payer_lud16,
             s.comment, s.created_at, s.updated_at, s.active_connector_id,
             s.reservation_fee_msat, s.reservation_id))

    async def update(self, conn: aiosqlite.Connection, session_id: str, *,
                     expect_state: State | tuple[State, ...] | None = None, **fields: Any) -> bool:
        """Update fields; with `expect_state`, only if the session is still in that state.

        A new `state` must be a transition the table in `strom/sessions/states.py` allows
        from the current one, else `IllegalTransition` (writing the current state again
        changes nothing and is no transition).
        """
        unknown = set(fields) - _EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        expected = (expect_state,) if isinstance(expect_state, State) else expect_state
        if "state" in fields:
            cursor = await conn.execute("SELECT state FROM sessions WHERE id = ?", (session_id,))
            row = await cursor.fetchone()
            if row is None or (expected is not None and State(row[0]) not in expected):
                return False
            if State(row[0]) != State(fields["state"]):
                states.check(State(row[0]), State(fields["state"]))
        values = [v.value if isinstance(v, State) else v for v in fields.values()]
        sql = (f"UPDATE sessions SET {', '.join(f'{k} = ?' for k in fields)}, updated_at = ?"
               " WHERE id = ?")
        params: list[Any] = [*values, iso(), session_id]
        if expected is not None:
            sql += f" AND state IN ({', '.join('?' * len(expected))})"
            params += [s.value for s in expected]
        cursor = await conn.execute(sql, params)
        return cursor.rowcount == 1

    async def get_in(self, conn: aiosqlite.Connection, session_id: str) -> Session | None:
        cursor = await conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,))
        row = await cursor.fetchone()
        return _row(row) if row else None

    async def get(self, session_id: str) -> Session | None:
        row = await self._db.fetchone("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return _row(row) if row else None

    async def by_token(self, token: str) -> Session | None:
        """The session whose payer holds `token` (the right to view, stop and refund)."""
        return await self._by("token", token)

    async def by_view_token(self, token: str) -> Session | None:
        """The session `token` may only look at (the shareable read-only link)."""
        return await self._by("view_token", token)

    async def by_topup_token(self, token: str) -> Session | None:
        """The session `token` may only pay into (the top-up link)."""
        return await self._by("topup_token", token)

    async def _by(self, column: str, token: str) -> Session | None:
        # `column` is one of three literals above, never input.
        row = await self._db.fetchone(f"SELECT * FROM sessions WHERE {column} = ?", (token,))
        return _row(row) if row else None

    async def final_reading_in(self, conn: aiosqlite.Connection, session: Session) -> bool:
        """False while the session's OCPP transaction is still open: the charger has not sent
        its final meter reading (StopTransaction) yet and may still report more energy."""
        if session.transaction_id is None:
            return True  # never charged: there is nothing more to read
        cursor = await conn.execute(
            "SELECT stopped_at FROM ocpp_transactions WHERE id = ? AND cp_id = ?",
            (session.transaction_id, session.cp_id))
        row = await cursor.fetchone()
        return row is None or row[0] is not None

    async def by_id_tag(self, id_tag: str) -> Session | None:
        row = await self._db.fetchone("SELECT * FROM sessions WHERE id_tag = ?", (id_tag,))
        return _row(row) if row else None

    async def by_id_tag_in(self, conn: aiosqlite.Connection, id_tag: str) -> Session | None:
        cursor = await conn.execute("SELECT * FROM sessions WHERE id_tag = ?", (id_tag,))
        row = await cursor.fetchone()
        return _row(row) if row else None

    async def has_pending_refund(self, conn: aiosqlite.Connection, session_id: str) -> bool:
        cursor = await conn.execute(
            "SELECT 1 FROM refunds WHERE session_id = ? AND state = 'pending'", (session_id,))
        return await cursor.fetchone() is not None

    async def by_transaction(self, cp_id: str, transaction_id: int) -> Session | None:
        row = await self._db.fetchone(
            "SELECT * FROM sessions WHERE cp_id = ? AND transaction_id = ?", (cp_id, transaction_id))
        return _row(row) if row else None

    async def in_states(self, *states: State) -> list[Session]:
        rows = await self._db.fetchall(
            f"SELECT * FROM sessions WHERE state IN ({', '.join('?' * len(states))})"
            " ORDER BY created_at", [s.value for s in states])
        return [_row(r) for r in rows]

    async def still_charging_after_end(self, cp_id: str,
                                       connector_id: int) -> Session | None:
        """The newest session on this connector if it has ended while the charger never
        reported its transaction stopped (the charger may still be charging it)."""
        row = await self._db.fetchone(
            "SELECT * FROM sessions WHERE cp_id = ? AND active_connector_id = ?"
            " AND transaction_id IS NOT NULL ORDER BY created_at DESC LIMIT 1",
            (cp_id, connector_id))
        session = _row(row) if row else None
        if session is None or session.state not in ENDED_STATES or session.transaction_id is None:
            return None
        return session if await self.transaction_open(session.transaction_id) else None

    async def transaction_open(self, transaction_id: int) -> bool:
        """True while the charger has not reported this OCPP transaction stopped."""
        row = await self._db.fetchone(
            "SELECT 1 FROM ocpp_transactions WHERE id = ? AND stopped_at IS NULL",
            (transaction_id,))
        return row is not None

    async def busy_connectors(self, cp_id: str) -> set[int]:
        """Connectors held by a session that is reserved, starting, charging or stopping."""
        return set(await self.held_connectors(cp_id))

    async def held_connectors(self, cp_id: str) -> dict[int, str | None]:
        """Held connectors → until when a reservation holds them (None: a running session)."""
        rows = await self._db.fetchall(
            f"SELECT active_connector_id, state, reserved_until FROM sessions WHERE cp_id = ?"
            f" AND state IN ({', '.join('?' * len(HOLDING_STATES))})"
            " AND active_connector_id IS NOT NULL",
            (cp_id, *[s.value for s in HOLDING_STATES]))
        return {r[0]: (r[2] or "") if r[1] == State.RESERVED.value else None for r in rows}

    async def list(self, *, cp_id: str | None = None, state: State | None = None,
                   payer_pubkey: str | None = None, limit: int = 100,
                   offset: int = 0) -> list[Session]:
        """Newest first."""
        where, params = [], []
        if cp_id:
            where.append("cp_id = ?")
            params.append(cp_id)
        if payer_pubkey:
            where.append("payer_pubkey = ?")
            params.append(payer_pubkey)
        if state:
            where.append("state = ?")
            params.append(state.value)
        sql = "SELECT * FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC LIMIT ? OFFSET ?"
        rows = await self._db.fetchall(sql, [*params, limit, offset])
        return [_row(r) for r in rows]

    async def count(self, *, cp_id: str | None = None, state: State | None = None) -> int:
        where, params = [], []
        if cp_id:
            where.append("cp_id = ?")
            params.append(cp_id)
        if state:
            where.append("state = ?")
            params.append(state.value)
        row = await self._db.fetchone(
            "SELECT COUNT(*) FROM sessions" + (" WHERE " + " AND ".join(where) if where else ""),
            params)
        return int(row[0]) if row else 0

    async def totals(self) -> dict[str, int]:
        """Sums over all sessions of the columns the money invariant ties together."""
        row = await self._db.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(paid_msat), 0), COALESCE(SUM(consumed_msat), 0),"
            " COALESCE(SUM(refunded_msat), 0), COALESCE(SUM(forfeited_msat), 0),"
            " COALESCE(SUM(held_msat), 0), COALESCE(SUM(unbilled_msat), 0) FROM sessions")
        assert row is not None
        sessions, received, consumed, refunded, forfeited, held, unbilled = (int(v) for v in row)
        return {"sessions": sessions, "received_msat": received, "consumed_msat": consumed,
                "refunded_msat": refunded, "forfeited_msat": forfeited, "held_msat": held,
                "refundable_msat": received - consumed - refunded - forfeited - held,
                "unbilled_msat": unbilled}

    # --- invoices ---------------------------------------------------------------------------

    async def add_invoice(self, conn: aiosqlite.Connection, *, payment_hash: str, session_id: str,
                          purpose: str, amount_msat: int, bolt11: str, expires_at: str) -> None:
        await conn.execute(
            "INSERT INTO session_invoices (payment_hash, session_id, purpose, amount_msat, bolt11,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (payment_hash, session_id, purpose, amount_msat, bolt11, iso(), expires_at))

    async def invoice_in(self, conn: aiosqlite.Connection, payment_hash: str) -> dict[str, Any] | None:
        cursor = await conn.execute(
            "SELECT * FROM session_invoices WHERE payment_hash = ?", (payment_hash,))
        row = await cursor.fetchone()
        return dict(row) if row else None

    async def mark_invoice_paid(self, conn: aiosqlite.Connection, payment_hash: str) -> bool:
        """True only the first time: a payment is recorded once."""
        cursor = await conn.execute(
            "UPDATE session_invoices SET paid_at = ? WHERE payment_hash = ? AND paid_at IS NULL",
            (iso(), payment_hash))
        return cursor.rowcount == 1

    async def unpaid_invoices(self) -> builtins.list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT * FROM session_invoices WHERE paid_at IS NULL ORDER BY created_at")
        return [dict(r) for r in rows]

    async def paid_invoices_total(self, session_id: str) -> int:
        """What the session's paid invoices (prepay and top-ups) add up to, in msat."""
        row = await self._db.fetchone(
            "SELECT COALESCE(SUM(amount_msat), 0) FROM session_invoices"
            " WHERE session_id = ? AND paid_at IS NOT NULL", (session_id,))
        return int(row[0]) if row else 0

    async def invoices_unlike_wallet(self) -> builtins.list[dict[str, Any]]:
        """`{payment_hash, wallet, paid_at}` of session invoices that the wallet's books
        (`ln_invoices`) and the session's disagree on being paid."""
        rows = await self._db.fetchall(
            "SELECT w.payment_hash, w.state AS wallet, i.paid_at FROM ln_invoices w"
            " JOIN session_invoices i ON i.payment_hash = w.payment_hash"
            " WHERE (w.state = 'paid') != (i.paid_at IS NOT NULL)")
        return [dict(r) for r in rows]

    async def stranded_payments(
            self) -> tuple[builtins.list[tuple[str, int]], builtins.list[str]]:
        """What the store shows paid that the sessions may not have acted on: (payment hash,
        received msat) of session invoices the wallet recorded paid and the session did not,
        and the ids of sessions in `paid` (oldest first). One query over two indexes
        (`0011_reconcile_indexes.sql`): cheap enough to ask every few seconds."""
        rows = await self._db.fetchall(STRANDED_SQL, (State.PAID.value,))
        invoices = [(r[1], int(r[2])) for r in rows if r[0] == "invoice"]
        return invoices, [r[1] for r in rows if r[0] == "session"]

    # --- purging what was never paid (strom/sessions/expiry.py) -----------------------------

    async def unpaid_expired_before(
            self, cutoff: str, limit: int,
            after: tuple[str, str] = ("", "")) -> builtins.list[dict[str, Any]]:
        """Unpaid invoices (prepay and top-up) that expired before `cutoff`, in (expires_at,
        payment_hash) order after `after`: a page at a time."""
        rows = await self._db.fetchall(
            "SELECT * FROM session_invoices WHERE paid_at IS NULL AND expires_at < ?"
            " AND (expires_at, payment_hash) > (?, ?) ORDER BY expires_at, payment_hash LIMIT ?",
            (cutoff, *after, limit))
        return [dict(r) for r in rows]

    async def moneyless_before(
            self, cutoff: str, limit: int,
            after: tuple[str, str] = ("", "")) -> builtins.list[tuple[str, str]]:
        """(created_at, id) of sessions created before `cutoff` that never received money and
        have no invoice left (pending ones whose invoices were purged, or failed when no invoice
        was made), in that order after `after`: a page at a time."""
        rows = await self._db.fetchall(
            "SELECT s.created_at, s.id FROM sessions s WHERE s.state IN (?, ?)"
            " AND s.paid_msat = 0 AND s.created_at < ? AND (s.created_at, s.id) > (?, ?)"
            " AND NOT EXISTS (SELECT 1 FROM session_invoices i WHERE i.session_id = s.id)"
            " AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.session_id = s.id)"
            " ORDER BY s.created_at, s.id LIMIT ?",
            (State.PENDING_PAYMENT.value, State.FAILED.value, cutoff, *after, limit))
        return [(r["created_at"], r["id"]) for r in rows]

    async def forget_unpaid_invoice(self, conn: aiosqlite.Connection, payment_hash: str) -> bool:
        """Delete an invoice that was never paid, with the zap request behind it and the
        wallet's own record of it; False when it was paid meanwhile."""
        cursor = await conn.execute(
            "DELETE FROM session_invoices WHERE payment_hash = ? AND paid_at IS NULL",
            (payment_hash,))
        if cursor.rowcount != 1:
            return False
        await conn.execute("DELETE FROM zap_requests WHERE payment_hash = ?", (payment_hash,))
        await conn.execute("DELETE FROM ln_invoices WHERE payment_hash = ? AND state != 'paid'",
                           (payment_hash,))
        return True

    async def forget_moneyless(self, conn: aiosqlite.Connection, session_id: str) -> bool:
        """Delete a session that never held money (checked again here) and its k1s."""
        cursor = await conn.execute(
            "SELECT 1 FROM sessions s WHERE s.id = ? AND s.state IN (?, ?) AND s.paid_msat = 0"
            " AND NOT EXISTS (SELECT 1 FROM session_invoices i WHERE i.session_id = s.id)"
            " AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.session_id = s.id)",
            (session_id, State.PENDING_PAYMENT.value, State.FAILED.value))
        if await cursor.fetchone() is None:
            return False
        # Its zap requests went with its invoices (forget_unpaid_invoice).
        await conn.execute("DELETE FROM withdraw_links WHERE session_id = ?", (session_id,))
        await conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        return True
