"""Repository of firmware files, firmware updates sent to chargers, and diagnostics/log uploads.

Link tokens are stored as their sha256 only; the caller compares in constant time. The file
names on disk (`stored_as`) are strom's own; `name` is for display only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from strom.store.db import Database
from strom.timeutil import iso

# Status words a charger may repeat for ever (Idle after every TriggerMessage): the history of
# one request keeps at most this many.
HISTORY_MAX = 50


@dataclass(frozen=True, slots=True)
class FirmwareFile:
    id: int
    name: str
    stored_as: str
    size: int
    sha256: str
    uploaded_at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "size": self.size, "sha256": self.sha256,
                "uploaded_at": self.uploaded_at}


@dataclass(frozen=True, slots=True)
class FirmwareUpdate:
    id: int
    cp_id: str
    file_id: int
    token_sha256: str
    signed: bool
    retrieve_at: str
    retries: int | None
    retry_interval: int | None
    expires_at: str
    downloaded_at: str | None
    downloads_refused: int
    status: str
    outcome: str | None
    reason: str | None
    history: list[dict[str, str]]
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "cp_id": self.cp_id, "file_id": self.file_id,
                "signed": self.signed, "retrieve_at": self.retrieve_at, "retries": self.retries,
                "retry_interval": self.retry_interval, "link_expires_at": self.expires_at,
                "downloaded_at": self.downloaded_at, "downloads_refused": self.downloads_refused,
                "status": self.status, "outcome": self.outcome, "reason": self.reason,
                "history": self.history, "created_at": self.created_at,
                "updated_at": self.updated_at}


@dataclass(frozen=True, slots=True)
class DiagnosticsRequest:
    id: int
    cp_id: str
    kind: str  # 'diagnostics' (GetDiagnostics), 'DiagnosticsLog' / 'SecurityLog' (GetLog)
    token_sha256: str
    expires_at: str
    status: str
    outcome: str | None
    reason: str | None
    history: list[dict[str, str]]
    name: str | None
    stored_as: str | None
    size: int | None
    sha256: str | None
    uploaded_at: str | None
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "cp_id": self.cp_id, "kind": self.kind,
                "link_expires_at": self.expires_at, "status": self.status,
                "outcome": self.outcome, "reason": self.reason, "history": self.history,
                "file": None if self.stored_as is None else {
                    "name": self.name, "size": self.size, "sha256": self.sha256,
                    "uploaded_at": self.uploaded_at},
                "created_at": self.created_at, "updated_at": self.updated_at}


def _update(row: Any) -> FirmwareUpdate:
    data = dict(row)
    data["signed"] = bool(data["signed"])
    data["history"] = json.loads(data["history"])
    return FirmwareUpdate(**data)


def _diagnostics(row: Any) -> DiagnosticsRequest:
    data = dict(row)
    data["history"] = json.loads(data["history"])
    return DiagnosticsRequest(**data)


def _history(old: str, status: str, at: str) -> str:
    entries = json.loads(old)
    entries.append({"at": at, "status": status})
    return json.dumps(entries[-HISTORY_MAX:])


class FirmwareRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- firmware files ---------------------------------------------------------------------

    async def add_file(self, *, name: str, stored_as: str, size: int,
                       sha256: str) -> FirmwareFile:
        at = iso()
        file_id = await self._db.execute(
            "INSERT INTO firmware_files (name, stored_as, size, sha256, uploaded_at)"
            " VALUES (?, ?, ?, ?, ?)", (name, stored_as, size, sha256, at))
        return FirmwareFile(file_id, name, stored_as, size, sha256, at)

    async def file(self, file_id: int) -> FirmwareFile | None:
        row = await self._db.fetchone("SELECT * FROM firmware_files WHERE id = ?", (file_id,))
        return FirmwareFile(**dict(row)) if row else None

    async def files(self) -> list[FirmwareFile]:
        rows = await self._db.fetchall("SELECT * FROM firmware_files ORDER BY id DESC")
        return [FirmwareFile(**dict(r)) for r in rows]

    # --- firmware updates -------------------------------------------------------------------

    async def add_update(self, *, cp_id: str, file_id: int, token_sha256: str, signed: bool,
                         retrieve_at: str, retries: int | None, retry_interval: int | None,
                         expires_at: str) -> int:
        at = iso()
        return await self._db.execute(
            "INSERT INTO firmware_updates (cp_id, file_id, token_sha256, signed, retrieve_at,"
            " retries, retry_interval, expires_at, status, history, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'Requested', ?, ?, ?)",
            (cp_id, file_id, token_sha256, int(signed), retrieve_at, retries, retry_interval,
             expires_at, _history("[]", "Requested", at), at, at))

    async def update(self, update_id: int) -> FirmwareUpdate | None:
        row = await self._db.fetchone("SELECT * FROM firmware_updates WHERE id = ?",
                                      (update_id,))
        return _update(row) if row else None

    async def updates(self, cp_id: str | None = None, limit: int = 50) -> list[FirmwareUpdate]:
        where, params = ("WHERE cp_id = ?", (cp_id, limit)) if cp_id else ("", (limit,))
        rows = await self._db.fetchall(
            f"SELECT * FROM firmware_updates {where} ORDER BY id DESC LIMIT ?", params)
        return [_update(r) for r in rows]

    async def settle_update(self, update_id: int, *, outcome: str, reason: str | None,
                            status: str | None = None, expires_at: str | None = None) -> None:
        """The charger's answer to the request; a refused one also ends its link
        (`expires_at` now) and takes `status`."""
        await self._settle("firmware_updates", update_id, outcome, reason, status, expires_at)

    async def mark_downloaded(self, update_id: int) -> bool:
        """Spend the link: True for the first completed download only."""
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE firmware_updates SET downloaded_at = ?, updated_at = ?"
                " WHERE id = ? AND downloaded_at IS NULL", (iso(), iso(), update_id))
            return cursor.rowcount == 1

    async def count_refused_download(self, update_id: int) -> None:
        await self._db.execute("UPDATE firmware_updates SET downloads_refused ="
                               " downloads_refused + 1 WHERE id = ?", (update_id,))

    async def record_firmware_status(self, cp_id: str, status: str, *, signed: bool,
                                     request_id: int | None = None) -> int | None:
        """A (Signed)FirmwareStatusNotification: onto the request it names, else the charger's
        latest update of that kind (1.6's FirmwareStatusNotification names none). Returns the
        update's id, None when there is none."""
        return await self._record(
            "firmware_updates", cp_id, status, request_id,
            "signed = ?", (int(signed),))

    # --- diagnostics and logs ---------------------------------------------------------------

    async def add_diagnostics(self, *, cp_id: str, kind: str, token_sha256: str,
                              expires_at: str) -> int:
        at = iso()
        return await self._db.execute(
            "INSERT INTO diagnostics (cp_id, kind, token_sha256, expires_at, status, history,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, 'Requested', ?, ?, ?)",
            (cp_id, kind, token_sha256, expires_at, _history("[]", "Requested", at), at, at))

    async def diagnostics(self, request_id: int) -> DiagnosticsRequest | None:
        row = await self._db.fetchone("SELECT * FROM diagnostics WHERE id = ?", (request_id,))
        return _diagnostics(row) if row else None

    async def diagnostics_list(self, cp_id: str | None = None,
                               limit: int = 50) -> list[DiagnosticsRequest]:
        where, params = ("WHERE cp_id = ?", (cp_id, limit)) if cp_id else ("", (limit,))
        rows = await self._db.fetchall(
            f"SELECT * FROM diagnostics {where} ORDER BY id DESC LIMIT ?", params)
        return [_diagnostics(r) for r in rows]

    async def settle_diagnostics(self, request_id: int, *, outcome: str, reason: str | None,
                                 name: str | None = None, status: str | None = None,
                                 expires_at: str | None = None) -> None:
        """As `settle_update`; `name`: the file name the charger announced."""
        await self._settle("diagnostics", request_id, outcome, reason, status, expires_at,
                           name=name)

    async def attach_upload(self, request_id: int, *, name: str | None, stored_as: str,
                            size: int, sha256: str) -> bool:
        """Record the uploaded file; False when one was already recorded (the link is spent)."""
        at = iso()
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE diagnostics SET name = COALESCE(?, name), stored_as = ?, size = ?,"
                " sha256 = ?, uploaded_at = ?, updated_at = ?"
                " WHERE id = ? AND stored_as IS NULL",
                (name, stored_as, size, sha256, at, at, request_id))
            return cursor.rowcount == 1

    async def record_diagnostics_status(self, cp_id: str, status: str, *, log: bool,
                                        request_id: int | None = None) -> int | None:
        """A DiagnosticsStatusNotification (`log` False) or LogStatusNotification."""
        kind = "kind != 'diagnostics'" if log else "kind = 'diagnostics'"
        return await self._record("diagnostics", cp_id, status, request_id, kind, ())

    async def _settle(self, table: str, row_id: int, outcome: str, reason: str | None,
                      status: str | None, expires_at: str | None, **also: Any) -> None:
        """The answer to a request: its outcome, and a new status (into the history) when
        given; `also`: columns set when their value is not None."""
        at = iso()
        extra = "".join(f", {column} = COALESCE(?, {column})" for column in also)
        async with self._db.transaction() as conn:
            async with conn.execute(f"SELECT status, history FROM {table} WHERE id = ?",
                                    (row_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return
            history = row["history"] if status is None else _history(row["history"], status, at)
            await conn.execute(
                f"UPDATE {table} SET outcome = ?, reason = ?, status = ?, history = ?,"
                f" expires_at = COALESCE(?, expires_at), updated_at = ?{extra} WHERE id = ?",
                (outcome, reason, status or row["status"], history, expires_at, at,
                 *also.values(), row_id))

    async def _record(self, table: str, cp_id: str, status: str, request_id: int | None,
                      condition: str, params: tuple[Any, ...]) -> int | None:
        at = iso()
        async with self._db.transaction() as conn:
            if request_id is not None:
                sql = f"SELECT id, history FROM {table} WHERE cp_id = ? AND id = ? AND {condition}"
                args: tuple[Any, ...] = (cp_id, request_id, *params)
            else:
                sql = (f"SELECT id, history FROM {table} WHERE cp_id = ? AND {condition}"
                       " ORDER BY id DESC LIMIT 1")
                args = (cp_id, *params)
            async with conn.execute(sql, args) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            await conn.execute(
                f"UPDATE {table} SET status = ?, history = ?, updated_at = ? WHERE id = ?",
                (status, _history(row["history"], status, at), at, row["id"]))
            return int(row["id"])
