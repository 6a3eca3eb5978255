"""Reservations billed elsewhere (an eMSP's RESERVE_NOW): what holds which connector, kept
across restarts (`roaming_holds`, 0023)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strom.store.db import Database
from strom.timeutil import iso, parse_iso


@dataclass(slots=True)
class RoamingHold:
    """A reservation billed elsewhere (postpaid: no fee, no session row): the connector held
    for `id_tag` until `until`. `holder` names it for its owner (who alone may cancel or use
    it); `about` is the owner's (the token, the reference)."""

    holder: str
    cp_id: str
    connector_id: int
    until: datetime
    id_tag: str
    reservation_id: int
    about: dict[str, Any] = field(default_factory=dict)


class RoamingHoldRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[RoamingHold]:
        rows = await self._db.fetchall(
            "SELECT holder, cp_id, connector_id, until, id_tag, reservation_id, about"
            " FROM roaming_holds")
        return [RoamingHold(r[0], r[1], r[2], parse_iso(r[3]), r[4], r[5], json.loads(r[6]))
                for r in rows]

    async def put(self, hold: RoamingHold) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO roaming_holds (holder, cp_id, connector_id, until, id_tag,"
            " reservation_id, about) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (hold.holder, hold.cp_id, hold.connector_id, iso(hold.until), hold.id_tag,
             hold.reservation_id, json.dumps(hold.about)))

    async def delete(self, holder: str) -> None:
        await self._db.execute("DELETE FROM roaming_holds WHERE holder = ?", (holder,))
