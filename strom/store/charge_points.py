"""Repository of charge points and their connectors."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from strom.errors import UserError
from strom.store.db import Database
from strom.timeutil import iso

# The rules for ids and passwords, the same for the CLI and the admin API. OCPP puts the id
# in the URL path, so it stays simple and safe; security profile 1 wants 16+ characters.
CP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$"
MIN_PASSWORD = 16
CERT_SHA256_PATTERN = r"^[0-9A-Fa-f]{64}$"  # a pinned client certificate (security profile 3)

# OCPP 1.6 ChargePointStatus values, plus "Offline" for a charger with no socket.
CONNECTOR_STATUSES = (
    "Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing",
    "Reserved", "Unavailable", "Faulted",
)


@dataclass(slots=True)
class Connector:
    connector_id: int
    status: str
    error_code: str
    updated_at: str | None


@dataclass(slots=True)
class ChargerRecord:
    id: str
    name: str
    lat: float
    lon: float
    num_connectors: int
    password_hash: str | None
    tariff: dict[str, Any]
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware: str | None
    connected: bool
    last_seen: str | None
    booted_at: str | None
    created_at: str
    # Passthrough (strom/passthrough/): the backend this charger stays connected to, as JSON
    # (`UpstreamConfig`; its password is sent to the backend, so it is stored, never shown).
    upstream: dict[str, Any] | None = None
    connectors: list[Connector] = field(default_factory=list)
    # OCPP subprotocols it may use (None: all strom speaks) and the one it last connected with.
    ocpp_protocols: tuple[str, ...] | None = None
    ocpp_protocol: str | None = None
    # OCPP security profile (None: 1) and a pinned client certificate (profile 3).
    security_profile: int | None = None
    client_cert_sha256: str | None = None
    # The operator's answer to its BootNotification: None Accepted, or "Rejected".
    boot_status: str | None = None

    @property
    def status(self) -> str:
        """One word for the whole charger, as nostr status and the pages show it."""
        if not self.connected:
            return "Offline"
        statuses = [c.status for c in self.connectors if c.connector_id > 0]
        # Connector 0 speaks for the whole charger, once the charger has reported it.
        whole = next((c.status for c in self.connectors
                      if c.connector_id == 0 and c.updated_at is not None), None)
        if whole in ("Unavailable", "Faulted"):
            return whole
        for wanted in ("Available", "Charging", "Preparing", "SuspendedEV", "SuspendedEVSE",
                       "Finishing", "Reserved", "Faulted"):
            if wanted in statuses:
                return wanted
        return "Unavailable"

    def connector(self, connector_id: int) -> Connector | None:
        return next((c for c in self.connectors if c.connector_id == connector_id), None)


def _row_to_cp(row: Any, connectors: list[Connector]) -> ChargerRecord:
    return ChargerRecord(
        id=row["id"], name=row["name"], lat=row["lat"], lon=row["lon"],
        num_connectors=row["num_connectors"], password_hash=row["password_hash"],
        tariff=json.loads(row["tariff_json"]) if row["tariff_json"] else {},
        vendor=row["vendor"], model=row["model"], serial_number=row["serial_number"],
        firmware=row["firmware"], connected=bool(row["connected"]), last_seen=row["last_seen"],
        booted_at=row["booted_at"], created_at=row["created_at"], connectors=connectors,
        ocpp_protocols=tuple(row["ocpp_protocols"].split()) if row["ocpp_protocols"] else None,
        ocpp_protocol=row["ocpp_protocol"], security_profile=row["security_profile"],
        client_cert_sha256=row["client_cert_sha256"], boot_status=row["boot_status"],
        upstream=json.loads(row["upstream_json"]) if row["upstream_json"] else None,
    )


def _boot_status(value: str | None) -> str | None:
    """Stored as NULL (Accepted) or "Rejected"."""
    if value is None or value.capitalize() == "Accepted":
        return None
    if value.capitalize() == "Rejected":
        return "Rejected"
    raise ValueError(f"boot status {value!r}: Accepted or Rejected")


class ChargePointRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, cp_id: str, *, name: str, lat: float, lon: float, num_connectors: int = 1,
                  password_hash: str | None = None, tariff: dict[str, Any] | None = None,
                  ocpp_protocols: tuple[str, ...] | None = None,
                  security_profile: int | None = None,
                  client_cert_sha256: str | None = None,
                  boot_status: str | None = None) -> ChargerRecord:
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO charge_points (id, name, lat, lon, num_connectors, password_hash,"
                    " tariff_json, created_at, ocpp_protocols, security_profile,"
                    " client_cert_sha256, boot_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (cp_id, name, lat, lon, num_connectors, password_hash,
                     json.dumps(tariff) if tariff else None, iso(),
                     " ".join(ocpp_protocols) if ocpp_protocols else None, security_profile,
                     client_cert_sha256.lower() if client_cert_sha256 else None,
                     _boot_status(boot_status)),
                )
                await conn.executemany(
                    "INSERT INTO connectors (cp_id, connector_id) VALUES (?, ?)",
                    [(cp_id, n) for n in range(0, num_connectors + 1)],
                )
        except sqlite3.IntegrityError:
            raise UserError(f"charge point {cp_id!r} already exists") from None
        cp = await self.get(cp_id)
        assert cp is not None
        return cp

    async def get(self, cp_id: str) -> ChargerRecord | None:
        # One query (one hop to the store's thread): the charger's row once per connector.
        rows = await self._db.fetchall(
            "SELECT cp.*, c.connector_id AS c_id, c.status AS c_status,"
            " c.error_code AS c_error_code, c.updated_at AS c_updated_at"
            " FROM charge_points cp LEFT JOIN connectors c ON c.cp_id = cp.id"
            " WHERE cp.id = ? ORDER BY c.connector_id", (cp_id,))
        if not rows:
            return None
        return _row_to_cp(rows[0], [
            Connector(r["c_id"], r["c_status"], r["c_error_code"], r["c_updated_at"])
            for r in rows if r["c_id"] is not None])

    async def exists(self, cp_id: str) -> bool:
        return await self._db.fetchone("SELECT 1 FROM charge_points WHERE id = ?", (cp_id,)) is not None

    async def list(self) -> list[ChargerRecord]:
        rows = await self._db.fetchall("SELECT * FROM charge_points ORDER BY id")
        conns = await self._db.fetchall("SELECT * FROM connectors ORDER BY cp_id, connector_id")
        by_cp: dict[str, list[Connector]] = {}
        for c in conns:
            by_cp.setdefault(c["cp_id"], []).append(
                Connector(c["connector_id"], c["status"], c["error_code"], c["updated_at"]))
        return [_row_to_cp(r, by_cp.get(r["id"], [])) for r in rows]

    async def remove(self, cp_id: str) -> bool:
        async with self._db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM charge_points WHERE id = ?", (cp_id,))
            return cursor.rowcount > 0

    async def update(self, cp_id: str, **fields: Any) -> None:
        """Update editable columns: name, lat, lon, password_hash, tariff, ocpp_protocols,
        security_profile, client_cert_sha256, upstream, boot_status."""
        allowed = {"name", "lat", "lon", "password_hash", "tariff", "ocpp_protocols",
                   "security_profile", "client_cert_sha256", "upstream", "boot_status"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if "tariff" in fields:
            tariff = fields.pop("tariff")
            fields["tariff_json"] = json.dumps(tariff) if tariff else None
        if "ocpp_protocols" in fields:
            fields["ocpp_protocols"] = " ".join(fields["ocpp_protocols"] or ()) or None
        if "upstream" in fields:
            upstream = fields.pop("upstream")
            fields["upstream_json"] = json.dumps(upstream) if upstream else None
        if "boot_status" in fields:
            fields["boot_status"] = _boot_status(fields["boot_status"])
        if not fields:
            return
        assignments = ", ".join(f"{k} = ?" for k in fields)
        await self._db.execute(f"UPDATE charge_points SET {assignments} WHERE id = ?",
                               (*fields.values(), cp_id))

    async def set_connected(self, cp_id: str, connected: bool, protocol: str | None = None
                            ) -> None:
        """The charger came online (with this OCPP subprotocol) or went offline; batched with
        other chargers' records (a reconnect storm commits them together). One statement both
        ways: a charger's going and coming back commit in the order they happened."""
        await self._db.write(
            "UPDATE charge_points SET connected = ?, last_seen = ?,"
            " ocpp_protocol = COALESCE(?, ocpp_protocol) WHERE id = ?",
            [(int(connected), iso(), protocol, cp_id)])

    async def boot_rejected(self, cp_id: str) -> bool:
        """Whether the operator rejects the charger's boots (read fresh: the CLI may have
        changed it from another process a moment ago)."""
        return await self._db.fetchone(
            "SELECT 1 FROM charge_points WHERE id = ? AND boot_status = 'Rejected'",
            (cp_id,)) is not None

    async def mark_all_disconnected(self) -> None:
        """At start-up no charger is connected yet, whatever the last run left behind."""
        await self._db.execute("UPDATE charge_points SET connected = 0")

    def touch(self, cp_id: str) -> None:
        """Note that the charger was heard from (batched: one commit for many heartbeats, the
        newest time per charger)."""
        self._db.write_latest("UPDATE charge_points SET last_seen = ? WHERE id = ?", cp_id,
                              (iso(), cp_id))

    async def record_boot(self, cp_id: str, *, vendor: str, model: str,
                          serial_number: str | None, firmware: str | None) -> None:
        """A boot: what the charger says it is (batched, as `set_connected`)."""
        now = iso()
        await self._db.write(
            "UPDATE charge_points SET vendor = ?, model = ?, serial_number = ?, firmware = ?,"
            " booted_at = ?, last_seen = ? WHERE id = ?",
            [(vendor, model, serial_number, firmware, now, now, cp_id)])

    async def set_connector_status(self, cp_id: str, connector_id: int, status: str,
                                   error_code: str = "NoError") -> None:
        """A connector's status as the charger reported it (batched, as `set_connected`)."""
        await self._db.write(
            "INSERT INTO connectors (cp_id, connector_id, status, error_code, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (cp_id, connector_id) DO UPDATE SET"
            " status = excluded.status, error_code = excluded.error_code,"
            " updated_at = excluded.updated_at",
            [(cp_id, connector_id, status, error_code, iso())])
