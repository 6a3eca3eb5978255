"""Repository of sites (chargers behind one grid connection) and the sessions they power."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from strom.store.db import Database
from strom.timeutil import iso


@dataclass(frozen=True, slots=True)
class SiteCharger:
    cp_id: str
    max_w: int | None  # the whole charger's cap; None: only the site's limit


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    limit_w: int
    min_w: int
    created_at: str
    chargers: tuple[SiteCharger, ...] = ()

    def charger(self, cp_id: str) -> SiteCharger | None:
        return next((c for c in self.chargers if c.cp_id == cp_id), None)


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    """A transaction running on one of a site's chargers, in the order they started."""

    transaction_id: int
    cp_id: str
    connector_id: int
    max_w: int | None = None  # the session's own limit (its slow rate), None: none


class SiteRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, site_id: str, *, name: str, limit_w: int, min_w: int) -> None:
        """Create the site or change it."""
        await self._db.execute(
            "INSERT INTO sites (id, name, limit_w, min_w, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
            " limit_w = excluded.limit_w, min_w = excluded.min_w",
            (site_id, name, limit_w, min_w, iso()))

    async def remove(self, site_id: str) -> bool:
        return await self._delete("DELETE FROM sites WHERE id = ?", (site_id,))

    async def get(self, site_id: str) -> Site | None:
        row = await self._db.fetchone("SELECT * FROM sites WHERE id = ?", (site_id,))
        return await self._site(row) if row else None

    async def list(self) -> builtins.list[Site]:
        return [await self._site(r) for r in
                await self._db.fetchall("SELECT * FROM sites ORDER BY id")]

    async def site_of(self, cp_id: str) -> Site | None:
        row = await self._db.fetchone(
            "SELECT s.* FROM sites s JOIN site_chargers c ON c.site_id = s.id WHERE c.cp_id = ?",
            (cp_id,))
        return await self._site(row) if row else None

    async def site_ids_of(self, cp_ids: Iterable[str]) -> dict[str, str]:
        """The site each of these chargers is in (chargers in none are left out): one query
        for many chargers, as a boot storm's site look-ups want."""
        rows = await self._db.fetchall(
            "SELECT cp_id, site_id FROM site_chargers"
            " WHERE cp_id IN (SELECT value FROM json_each(?))", (json.dumps(list(cp_ids)),))
        return {r["cp_id"]: r["site_id"] for r in rows}

    async def add_charger(self, site_id: str, cp_id: str, max_w: int | None) -> None:
        """Put a charger in the site (out of any other), with its own cap or none."""
        await self._db.execute(
            "INSERT INTO site_chargers (cp_id, site_id, max_w) VALUES (?, ?, ?)"
            " ON CONFLICT (cp_id) DO UPDATE SET site_id = excluded.site_id,"
            " max_w = excluded.max_w", (cp_id, site_id, max_w))

    async def remove_charger(self, site_id: str, cp_id: str) -> bool:
        return await self._delete("DELETE FROM site_chargers WHERE site_id = ? AND cp_id = ?",
                                  (site_id, cp_id))

    async def _delete(self, sql: str, params: tuple[str, ...]) -> bool:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount > 0

    async def open_transactions(self, site_id: str) -> builtins.list[OpenTransaction]:
        """Every transaction not stopped on the site's chargers, connected or not (a charger
        that went offline keeps charging at its last limit), oldest first."""
        return await self._open(" JOIN site_chargers c ON c.cp_id = t.cp_id WHERE c.site_id = ?",
                                (site_id,))

    async def limited_transactions(self, cp_id: str) -> builtins.list[OpenTransaction]:
        """The open transactions of a charger in no site whose session has a limit of its own
        (the slow rate), oldest first."""
        return await self._open(
            " WHERE t.cp_id = ? AND s.max_w IS NOT NULL AND t.cp_id NOT IN"
            " (SELECT cp_id FROM site_chargers)", (cp_id,))

    async def limited_chargers(self) -> set[str]:
        """Chargers in no site with an open transaction whose session has its own limit."""
        found = await self._open(" WHERE s.max_w IS NOT NULL AND t.cp_id NOT IN"
                                 " (SELECT cp_id FROM site_chargers)", ())
        return {t.cp_id for t in found}

    async def _open(self, where: str, args: tuple[Any, ...]) -> builtins.list[OpenTransaction]:
        # The session's limit is in the tariff it was sold under (`Tariff.max_power_w`).
        rows = await self._db.fetchall(
            "SELECT t.id, t.cp_id, t.connector_id, s.max_w FROM ocpp_transactions t"
            " LEFT JOIN (SELECT cp_id, transaction_id,"
            " json_extract(tariff_json, '$.max_power_w') AS max_w FROM sessions"
            " WHERE transaction_id IS NOT NULL) s"
            " ON s.cp_id = t.cp_id AND s.transaction_id = t.id"
            f"{where} AND t.stopped_at IS NULL ORDER BY t.id", args)
        return [OpenTransaction(r["id"], r["cp_id"], r["connector_id"],
                                None if r["max_w"] is None else int(r["max_w"])) for r in rows]

    async def _site(self, row: Any) -> Site:
        members = await self._db.fetchall(
            "SELECT cp_id, max_w FROM site_chargers WHERE site_id = ? ORDER BY cp_id",
            (row["id"],))
        return Site(row["id"], row["name"], row["limit_w"], row["min_w"], row["created_at"],
                    tuple(SiteCharger(m["cp_id"], m["max_w"]) for m in members))
