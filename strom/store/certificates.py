"""Repository of chargers' certificate signing requests (1.6 security extensions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strom.store.db import Database
from strom.timeutil import iso


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    id: int
    cp_id: str
    csr: str
    received_at: str
    status: str  # 'Pending', then the charger's answer to CertificateSigned, or 'Replaced'
    certificate_chain: str | None
    answered_at: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "cp_id": self.cp_id, "csr": self.csr,
                "received_at": self.received_at, "status": self.status,
                "certificate_chain": self.certificate_chain, "answered_at": self.answered_at,
                "reason": self.reason}


class CertificateRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, cp_id: str, csr: str) -> int:
        """Record a CSR; the charger's earlier pending one is replaced."""
        async with self._db.transaction() as conn:
            await conn.execute("UPDATE certificate_requests SET status = 'Replaced'"
                               " WHERE cp_id = ? AND status = 'Pending'", (cp_id,))
            cursor = await conn.execute(
                "INSERT INTO certificate_requests (cp_id, csr, received_at, status)"
                " VALUES (?, ?, ?, 'Pending')", (cp_id, csr, iso()))
            return cursor.lastrowid or 0

    async def get(self, request_id: int) -> CertificateRequest | None:
        row = await self._db.fetchone("SELECT * FROM certificate_requests WHERE id = ?",
                                      (request_id,))
        return CertificateRequest(**dict(row)) if row else None

    async def list(self, cp_id: str | None = None, limit: int = 50) -> list[CertificateRequest]:
        where, params = ("WHERE cp_id = ?", (cp_id, limit)) if cp_id else ("", (limit,))
        rows = await self._db.fetchall(
            f"SELECT * FROM certificate_requests {where} ORDER BY id DESC LIMIT ?", params)
        return [CertificateRequest(**dict(r)) for r in rows]

    async def answered(self, request_id: int, *, status: str, chain: str | None,
                       reason: str | None) -> None:
        await self._db.execute(
            "UPDATE certificate_requests SET status = ?, certificate_chain = ?,"
            " answered_at = ?, reason = ? WHERE id = ?",
            (status, chain, iso(), reason, request_id))
