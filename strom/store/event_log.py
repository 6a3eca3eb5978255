"""Repository of the event log: what happened, per charge point, as JSON."""

from __future__ import annotations

import json
from typing import Any

from strom.store.db import Database
from strom.timeutil import iso

_INSERT = "INSERT INTO event_log (at, cp_id, kind, payload) VALUES (?, ?, ?, ?)"


def _entry(kind: str, payload: Any, cp_id: str | None) -> tuple[str, str | None, str, str]:
    return iso(), cp_id, kind, json.dumps(payload, default=str)


class EventLogRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(self, kind: str, payload: Any, cp_id: str | None = None) -> None:
        """Append an entry; it is committed when this returns (with other entries and records
        written at the same moment: `Database.write`)."""
        await self._db.write(_INSERT, [_entry(kind, payload, cp_id)])

    def append_soon(self, kind: str, payload: Any, cp_id: str | None = None) -> None:
        """`append` in the next batch commit: for entries a boot storm of thousands of chargers
        writes at once (`Database.write_soon`)."""
        self._db.write_soon(_INSERT, [_entry(kind, payload, cp_id)])

    async def recent(self, cp_id: str | None = None, limit: int = 100,
                     kind: str | None = None) -> list[dict[str, Any]]:
        """The newest entries first, of one charge point and of one kind when given (those
        still queued by `append_soon` are committed first)."""
        await self._db.flushed()
        where = " AND ".join(clause for clause, value in (("cp_id = ?", cp_id),
                                                          ("kind = ?", kind)) if value)
        params = [value for value in (cp_id, kind) if value]
        rows = await self._db.fetchall(
            f"SELECT * FROM event_log {'WHERE ' + where if where else ''}"
            " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [{"id": r["id"], "at": r["at"], "cp_id": r["cp_id"], "kind": r["kind"],
                 "payload": json.loads(r["payload"])} for r in rows]
