"""Repository of the tariff feed cache: the last good values of each feed and its last error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from strom.store.db import Database


@dataclass(frozen=True, slots=True)
class CachedFeed:
    """A feed as last seen: values from the last good fetch (if any) and the last error."""

    name: str
    source: str
    payload: Any | None
    fetched_at: str | None
    error: str | None
    checked_at: str


class TariffFeedRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self) -> dict[str, CachedFeed]:
        """Every cached feed by name."""
        rows = await self._db.fetchall("SELECT * FROM tariff_feeds")
        return {r["name"]: CachedFeed(
            name=r["name"], source=r["source"],
            payload=json.loads(r["payload_json"]) if r["payload_json"] is not None else None,
            fetched_at=r["fetched_at"], error=r["error"], checked_at=r["checked_at"])
            for r in rows}

    async def record_success(self, name: str, source: str, payload: Any, at: str) -> None:
        """Replace the feed's values with a fresh fetch."""
        await self._db.execute(
            "INSERT INTO tariff_feeds (name, source, payload_json, fetched_at, error, checked_at)"
            " VALUES (?, ?, ?, ?, NULL, ?) ON CONFLICT(name) DO UPDATE SET"
            " source = excluded.source, payload_json = excluded.payload_json,"
            " fetched_at = excluded.fetched_at, error = NULL, checked_at = excluded.checked_at",
            (name, source, json.dumps(payload), at, at))

    async def record_failure(self, name: str, source: str, error: str, at: str) -> None:
        """Note a failed fetch; the last good values stay unless they came from another source."""
        await self._db.execute(
            "INSERT INTO tariff_feeds (name, source, payload_json, fetched_at, error, checked_at)"
            " VALUES (?, ?, NULL, NULL, ?, ?) ON CONFLICT(name) DO UPDATE SET"
            " payload_json = CASE WHEN source = excluded.source THEN payload_json END,"
            " fetched_at = CASE WHEN source = excluded.source THEN fetched_at END,"
            " source = excluded.source, error = excluded.error, checked_at = excluded.checked_at",
            (name, source, error, at))
