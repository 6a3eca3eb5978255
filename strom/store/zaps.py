"""Repository of zap requests (NIP-57) and of nostr events already handled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strom.store.db import Database
from strom.timeutil import iso


@dataclass(frozen=True, slots=True)
class StoredZap:
    payment_hash: str
    session_id: str
    cp_id: str
    sender: str
    request_json: str
    bolt11: str
    receipt_id: str | None


class ZapRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, *, payment_hash: str, session_id: str, cp_id: str, sender: str,
                  request_json: str, bolt11: str) -> None:
        await self._db.execute(
            "INSERT INTO zap_requests (payment_hash, session_id, cp_id, sender, request_json,"
            " bolt11, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (payment_hash, session_id, cp_id, sender, request_json, bolt11, iso()))

    async def get(self, payment_hash: str) -> StoredZap | None:
        row = await self._db.fetchone("SELECT * FROM zap_requests WHERE payment_hash = ?",
                                      (payment_hash,))
        return _zap(row) if row else None

    async def last_request_of(self, sender: str) -> str | None:
        """The newest zap request `sender` made (its JSON), or None."""
        row = await self._db.fetchone(
            "SELECT request_json FROM zap_requests WHERE sender = ?"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1", (sender,))
        return str(row["request_json"]) if row else None

    async def paid_without_receipt(self) -> list[StoredZap]:
        """Zaps whose invoice is paid but whose receipt was not published (e.g. a crash)."""
        rows = await self._db.fetchall(
            "SELECT z.* FROM zap_requests z JOIN session_invoices i"
            " ON i.payment_hash = z.payment_hash"
            " WHERE z.receipt_id IS NULL AND i.paid_at IS NOT NULL")
        return [_zap(r) for r in rows]

    async def set_receipt(self, payment_hash: str, receipt_id: str) -> None:
        await self._db.execute(
            "UPDATE zap_requests SET receipt_id = ? WHERE payment_hash = ?",
            (receipt_id, payment_hash))

    async def claim(self, event_id: str, kind: int) -> bool:
        """True the first time an event is seen; False for every later delivery."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO nostr_handled (event_id, kind, handled_at) VALUES (?, ?, ?)"
                " ON CONFLICT (event_id) DO NOTHING", (event_id, kind, iso()))
            return cursor.rowcount == 1

    async def release(self, event_id: str) -> None:
        """Forget a claim whose handling failed before it had any effect (no invoice made)."""
        await self._db.execute("DELETE FROM nostr_handled WHERE event_id = ?", (event_id,))


def _zap(row: Any) -> StoredZap:
    return StoredZap(row["payment_hash"], row["session_id"], row["cp_id"], row["sender"],
                     row["request_json"], row["bolt11"], row["receipt_id"])
