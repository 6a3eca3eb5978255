"""Repository of OCPI parties (the eMSPs strom roams with, `0020_ocpi.sql`)."""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any

from strom.store.db import Database
from strom.timeutil import iso


@dataclass(frozen=True, slots=True)
class PartyRecord:
    id: int
    name: str
    state: str  # pending (token A issued), registered, unregistered
    token_b: str | None
    country_code: str | None
    party_id: str | None
    versions_url: str | None
    version: str | None
    endpoints: list[dict[str, Any]]
    credentials: dict[str, Any] | None
    created_at: str
    updated_at: str


def _party(row: Any) -> PartyRecord:
    return PartyRecord(
        id=row["id"], name=row["name"], state=row["state"], token_b=row["token_b"],
        country_code=row["country_code"], party_id=row["party_id"],
        versions_url=row["versions_url"], version=row["version"],
        endpoints=json.loads(row["endpoints_json"]),
        credentials=json.loads(row["credentials_json"]) if row["credentials_json"] else None,
        created_at=row["created_at"], updated_at=row["updated_at"])


class OcpiPartyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, name: str, token_a_hash: str) -> PartyRecord:
        now = iso()
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO ocpi_parties (name, state, token_a_hash, created_at, updated_at) "
                "VALUES (?, 'pending', ?, ?, ?)", (name, token_a_hash, now, now))
            party_id = cursor.lastrowid
        party = await self.get(int(party_id or 0))
        assert party is not None
        return party

    async def get(self, party_id: int) -> PartyRecord | None:
        row = await self._db.fetchone("SELECT * FROM ocpi_parties WHERE id = ?", (party_id,))
        return _party(row) if row else None

    async def by_token(self, token_hash: str) -> tuple[PartyRecord, str] | None:
        """The party whose token A (while pending) or token C (registered) has this hash, and
        which of the two it is ("A" or "C")."""
        row = await self._db.fetchone(
            "SELECT *, CASE WHEN token_c_hash = ? THEN 'C' ELSE 'A' END AS which "
            "FROM ocpi_parties WHERE (token_a_hash = ? AND state = 'pending') "
            "OR (token_c_hash = ? AND state = 'registered')",
            (token_hash, token_hash, token_hash))
        return (_party(row), row["which"]) if row else None

    async def list(self, *, registered_only: bool = False) -> builtins.list[PartyRecord]:
        rows = await self._db.fetchall(
            "SELECT * FROM ocpi_parties WHERE state = 'registered' ORDER BY id" if registered_only
            else "SELECT * FROM ocpi_parties ORDER BY id")
        return [_party(row) for row in rows]

    async def register(self, party_id: int, *, token_b: str, token_c_hash: str,
                       country_code: str, party: str, versions_url: str, version: str,
                       endpoints: builtins.list[dict[str, Any]],
                       credentials: dict[str, Any]) -> bool:
        """Pending or registered → registered with the eMSP's new details; token A is gone.
        False when another registered party already holds (country_code, party)."""
        async with self._db.transaction() as conn:
            clash = await (await conn.execute(
                "SELECT 1 FROM ocpi_parties WHERE state = 'registered' AND country_code = ? "
                "AND party_id = ? AND id != ?", (country_code, party, party_id))).fetchone()
            if clash:
                return False
            await conn.execute(
                "UPDATE ocpi_parties SET state = 'registered', token_a_hash = NULL, token_b = ?, "
                "token_c_hash = ?, country_code = ?, party_id = ?, versions_url = ?, "
                "version = ?, endpoints_json = ?, credentials_json = ?, updated_at = ? "
                "WHERE id = ?",
                (token_b, token_c_hash, country_code, party, versions_url, version,
                 json.dumps(endpoints), json.dumps(credentials), iso(), party_id))
        return True

    async def unregister(self, party_id: int) -> bool:
        """Every token of the party stops working; the row stays for the records."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE ocpi_parties SET state = 'unregistered', token_a_hash = NULL, "
                "token_c_hash = NULL, token_b = NULL, updated_at = ? "
                "WHERE id = ? AND state != 'unregistered'", (iso(), party_id))
            return cursor.rowcount > 0


@dataclass(frozen=True, slots=True)
class RoamingSession:
    id: str
    party: int
    id_tag: str
    token: dict[str, Any]
    authorization_reference: str | None
    cp_id: str
    connector_id: int
    transaction_id: int | None
    state: str  # pending, active, completed, invalid
    tariff: dict[str, Any]
    meter_start_wh: float
    energy_wh: float
    cost_msat: int
    started_at: str
    stopped_at: str | None
    stop_reason: str | None
    updated_at: str
    # The BTC/EUR rate its CDR was converted at, and the rate's time (None: a CDR in BTC).
    eur_per_btc: float | None = None
    rate_at: str | None = None


def _roaming(row: Any) -> RoamingSession:
    return RoamingSession(
        id=row["id"], party=row["party"], id_tag=row["id_tag"],
        token=json.loads(row["token_json"]),
        authorization_reference=row["authorization_reference"], cp_id=row["cp_id"],
        connector_id=row["connector_id"], transaction_id=row["transaction_id"],
        state=row["state"], tariff=json.loads(row["tariff_json"]),
        meter_start_wh=row["meter_start_wh"], energy_wh=row["energy_wh"],
        cost_msat=row["cost_msat"], started_at=row["started_at"], stopped_at=row["stopped_at"],
        stop_reason=row["stop_reason"], updated_at=row["updated_at"],
        eur_per_btc=row["eur_per_btc"], rate_at=row["rate_at"])


class RoamingRepository:
    """Roaming sessions and the roaming book (`ocpi_sessions`, `roaming_ledger`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, session: RoamingSession) -> None:
        await self.db.execute(
            "INSERT INTO ocpi_sessions (id, party, id_tag, token_json, authorization_reference,"
            " cp_id, connector_id, state, tariff_json, started_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (session.id, session.party, session.id_tag, json.dumps(session.token),
             session.authorization_reference, session.cp_id, session.connector_id,
             session.state, json.dumps(session.tariff), session.started_at, session.updated_at))

    async def get(self, session_id: str) -> RoamingSession | None:
        row = await self.db.fetchone("SELECT * FROM ocpi_sessions WHERE id = ?", (session_id,))
        return _roaming(row) if row else None

    async def by_tag(self, id_tag: str) -> RoamingSession | None:
        row = await self.db.fetchone("SELECT * FROM ocpi_sessions WHERE id_tag = ?", (id_tag,))
        return _roaming(row) if row else None

    async def pending_by_tag(self, id_tag: str) -> RoamingSession | None:
        """The newest session of this idTag that has no transaction yet (a card's uid may
        start many sessions; a command's idTag one)."""
        row = await self.db.fetchone(
            "SELECT * FROM ocpi_sessions WHERE id_tag = ? AND transaction_id IS NULL "
            "ORDER BY started_at DESC LIMIT 1", (id_tag,))
        return _roaming(row) if row else None

    async def in_conn(self, conn: Any, transaction_id: int) -> RoamingSession | None:
        cursor = await conn.execute(
            "SELECT * FROM ocpi_sessions WHERE transaction_id = ?", (transaction_id,))
        row = await cursor.fetchone()
        await cursor.close()
        return _roaming(row) if row else None

    async def open_transactions(self) -> set[int]:
        rows = await self.db.fetchall(
            "SELECT transaction_id FROM ocpi_sessions WHERE state = 'active'")
        return {row["transaction_id"] for row in rows}

    async def of_party(self, party: int) -> builtins.list[RoamingSession]:
        rows = await self.db.fetchall(
            "SELECT * FROM ocpi_sessions WHERE party = ? ORDER BY started_at", (party,))
        return [_roaming(row) for row in rows]

    async def update(self, conn: Any, session_id: str, **fields: Any) -> str:
        """Set `fields` of one session; returns the `updated_at` it wrote."""
        allowed = {"transaction_id", "state", "meter_start_wh", "energy_wh", "cost_msat",
                   "started_at", "stopped_at", "stop_reason", "eur_per_btc", "rate_at"}
        assert set(fields) <= allowed, fields
        names = ", ".join(f"{name} = ?" for name in fields)
        now = iso()
        await conn.execute(f"UPDATE ocpi_sessions SET {names}, updated_at = ? WHERE id = ?",
                           (*fields.values(), now, session_id))
        return now

    async def set_state(self, session_id: str, state: str, reason: str | None = None) -> None:
        async with self.db.transaction() as conn:
            await self.update(conn, session_id, state=state, stop_reason=reason)

    async def book(self, conn: Any, session: RoamingSession, amount_msat: int) -> None:
        """`amount_msat` more owed by the session's eMSP (nothing for zero)."""
        if amount_msat <= 0:
            return
        await conn.execute(
            "INSERT INTO roaming_ledger (ocpi_session_id, kind, debit, credit, amount_msat, at) "
            "VALUES (?, 'roaming_energy', ?, 'roaming_revenue', ?, ?)",
            (session.id, f"emsp:{session.party}", amount_msat, iso()))

    async def books(self) -> builtins.list[tuple[RoamingSession, int]]:
        """Every roaming session with what its book adds up to (for `strom ledger check`)."""
        rows = await self.db.fetchall(
            "SELECT s.*, COALESCE((SELECT SUM(amount_msat) FROM roaming_ledger l "
            "WHERE l.ocpi_session_id = s.id), 0) AS booked FROM ocpi_sessions s ORDER BY s.id")
        return [(_roaming(row), row["booked"]) for row in rows]

    async def shared_transactions(self) -> builtins.list[int]:
        """OCPP transactions both a roaming session and a lightning session claim."""
        rows = await self.db.fetchall(
            "SELECT o.transaction_id FROM ocpi_sessions o JOIN sessions s "
            "ON s.transaction_id = o.transaction_id WHERE o.transaction_id IS NOT NULL")
        return [row["transaction_id"] for row in rows]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    party: int
    uid: str
    type: str
    valid: bool
    whitelist: str  # ALWAYS, ALLOWED, ALLOWED_OFFLINE, NEVER
    token: dict[str, Any]
    last_updated: str


def _token(row: Any) -> TokenRecord:
    return TokenRecord(party=row["party"], uid=row["uid"], type=row["type"],
                       valid=bool(row["valid"]), whitelist=row["whitelist"],
                       token=json.loads(row["token_json"]), last_updated=row["last_updated"])


class TokenRepository:
    """The eMSPs' token lists (`ocpi_tokens`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, party: int, token: dict[str, Any]) -> None:
        await self._db.execute(
            "INSERT INTO ocpi_tokens (party, uid, uid_key, type, valid, whitelist, token_json, "
            "last_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (party, uid, type) DO "
            "UPDATE SET valid = excluded.valid, whitelist = excluded.whitelist, "
            "token_json = excluded.token_json, last_updated = excluded.last_updated",
            (party, token["uid"], token["uid"].upper(), token["type"], int(token["valid"]),
             token["whitelist"], json.dumps(token), token["last_updated"]))

    async def get(self, party: int, uid: str, type_: str) -> TokenRecord | None:
        row = await self._db.fetchone(
            "SELECT * FROM ocpi_tokens WHERE party = ? AND uid = ? AND type = ?",
            (party, uid, type_))
        return _token(row) if row else None

    async def by_id_tag(self, id_tag: str) -> TokenRecord | None:
        """The token a charger's idTag is (of a registered party), if any."""
        row = await self._db.fetchone(
            "SELECT t.* FROM ocpi_tokens t JOIN ocpi_parties p ON p.id = t.party "
            "WHERE t.uid_key = ? AND p.state = 'registered' ORDER BY t.last_updated DESC "
            "LIMIT 1", (id_tag.upper(),))
        return _token(row) if row else None
