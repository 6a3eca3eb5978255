"""Firmware updates and diagnostics uploads: the operator's files, the chargers' links.

Firmware: the operator uploads a file; an update makes a one-time download link for one charger
(`/firmware/{update id}/{token}`), sends UpdateFirmware (or SignedUpdateFirmware) with it, and
follows the charger's status notifications (the OCPP handlers record them). The link grants one
completed download of that file, until it expires; a refused request ends it at once.

Diagnostics: a request makes an upload link (`/uploads/{request id}/{token}`) and sends
GetDiagnostics (or GetLog for the security extensions' logs). The link grants storing one file
of at most `[files] upload_max_bytes` for that request, until it expires; then it is spent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from strom.chargers.control import (
    ChargerControl,
    ControlResult,
    FirmwareRequest,
    UploadRequest,
    UploadResult,
)
from strom.chargers.files import (
    FileFolder,
    display_name,
    new_link_token,
    token_fits,
)
from strom.chargers.operator import CommandRefused, OperatorCommands, UnknownChargePoint
from strom.config import FilesSettings, Settings
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.event_log import EventLogRepository
from strom.store.firmware import (
    DiagnosticsRequest,
    FirmwareFile,
    FirmwareRepository,
    FirmwareUpdate,
)
from strom.timeutil import iso, parse_iso, utcnow

LOGS = ("DiagnosticsLog", "SecurityLog")  # GetLog's kinds; None: GetDiagnostics
MAX_RETRIES = 100
MAX_RETRY_INTERVAL = 86_400


class IncomingFile(Protocol):
    """A file arriving from outside: its bytes as they come, and the name its sender gave
    (known once the bytes have begun; for display only)."""

    name: str | None

    def chunks(self) -> AsyncIterator[bytes]: ...


class LinkRefused(Exception):
    """A link that grants nothing (now): `why` is "unknown", "expired", "used" or "busy"."""

    def __init__(self, why: str, message: str) -> None:
        super().__init__(message)
        self.why = why
        self.message = message


@dataclass(frozen=True, slots=True)
class Download:
    """A claimed firmware download: the file to send."""

    update_id: int
    path: Path
    name: str
    size: int


class FirmwareService:
    """Firmware files, updates and diagnostics uploads; `base_url` is where chargers reach
    strom's HTTP."""

    def __init__(self, repo: FirmwareRepository, charge_points: ChargePointRepository,
                 chargers: ChargerControl, audit: EventLogRepository, data_dir: Path,
                 settings: FilesSettings, base_url: str) -> None:
        self.repository = repo  # the OCPP handlers record status notifications in it
        self._charge_points = charge_points
        self._commands = OperatorCommands(charge_points, chargers, audit)
        self.settings = settings
        self._base_url = base_url.rstrip("/")
        self.firmware_files = FileFolder(data_dir / "firmware")
        self.uploads = FileFolder(data_dir / "diagnostics")
        # Downloads in progress (update id → start, monotonic): one at a time per link; a
        # claim older than the transfer timeout is stale (the charger gave up).
        self._downloading: dict[int, float] = {}
        self._uploading: dict[int, float] = {}

    # --- firmware files ---------------------------------------------------------------------

    async def add_file(self, incoming: IncomingFile) -> FirmwareFile:
        """Store an operator's firmware file (`TooLarge` / `TooSlow` past the bounds)."""
        stored = await self.firmware_files.receive(
            incoming.chunks(), limit=self.settings.firmware_max_bytes,
            seconds=self.settings.transfer_timeout_seconds)
        if stored.size == 0:
            self.firmware_files.remove(stored.stored_as)
            raise CommandRefused("the firmware file is empty", "file")
        return await self.repository.add_file(name=display_name(incoming.name, "firmware.bin"),
                                         stored_as=stored.stored_as, size=stored.size,
                                         sha256=stored.sha256)

    async def files(self) -> list[FirmwareFile]:
        return await self.repository.files()

    # --- updates ----------------------------------------------------------------------------

    async def start_update(self, cp_id: str, file_id: int, *, retrieve_at: datetime | None,
                           retries: int | None, retry_interval: int | None,
                           signing_certificate: str | None = None, signature: str | None = None,
                           by: str) -> tuple[FirmwareUpdate, ControlResult]:
        """Make the charger's one-time link and send the update; the update as stored after
        the charger's answer, and the answer."""
        if await self._charge_points.get(cp_id) is None:
            raise UnknownChargePoint(cp_id)
        firmware = await self.repository.file(file_id)
        if firmware is None:
            raise CommandRefused(f"no firmware file {file_id}", "file_id")
        _check_retries(retries, retry_interval)
        if (signing_certificate is None) != (signature is None):
            raise CommandRefused("a signed update needs both the signing certificate and the"
                                 " signature", "signature")
        when = retrieve_at or utcnow()
        retry_time = (retries or 0) * (retry_interval or 0)
        expires = max(when, utcnow()) + timedelta(seconds=self.settings.link_seconds + retry_time)
        token, digest = new_link_token()
        update_id = await self.repository.add_update(
            cp_id=cp_id, file_id=file_id, token_sha256=digest,
            signed=signing_certificate is not None, retrieve_at=iso(when), retries=retries,
            retry_interval=retry_interval, expires_at=iso(expires))
        # The file name at the end: some chargers take the image's name from the URL.
        location = f"{self._base_url}/firmware/{update_id}/{token}/{firmware.name}"
        result = await self._commands.update_firmware(cp_id, FirmwareRequest(
            location=location, retrieve_at=when, request_id=update_id, retries=retries,
            retry_interval=retry_interval, signing_certificate=signing_certificate,
            signature=signature), by=by)
        await self.repository.settle_update(
            update_id, outcome=result.outcome.value, reason=result.reason or None,
            status=None if result.ok else "Failed",
            expires_at=None if result.ok else iso())
        stored = await self.repository.update(update_id)
        assert stored is not None
        return stored, result

    async def updates(self, cp_id: str | None = None, limit: int = 50) -> list[FirmwareUpdate]:
        return await self.repository.updates(cp_id, limit)

    async def claim_download(self, update_id: int, token: str) -> Download:
        """The file behind a firmware link, if the link grants a download now (`LinkRefused`
        otherwise); `finish_download` after sending it."""
        update = await self.repository.update(update_id)
        if update is None or not token_fits(token, update.token_sha256):
            raise LinkRefused("unknown", "no such firmware link")
        if update.downloaded_at is not None:
            await self.repository.count_refused_download(update_id)
            raise LinkRefused("used", "this firmware link was already used")
        if parse_iso(update.expires_at) <= utcnow():
            raise LinkRefused("expired", "this firmware link has expired")
        if not self._claim(self._downloading, update_id):
            raise LinkRefused("busy", "this firmware link is being downloaded")
        firmware = await self.repository.file(update.file_id)
        if firmware is None:  # pragma: no cover - files are never deleted while linked
            self._downloading.pop(update_id, None)
            raise LinkRefused("unknown", "no such firmware link")
        return Download(update_id, self.firmware_files.file(firmware.stored_as), firmware.name,
                        firmware.size)

    async def finish_download(self, update_id: int, *, complete: bool) -> None:
        """The download ended: a complete one spends the link."""
        self._downloading.pop(update_id, None)
        if complete:
            await self.repository.mark_downloaded(update_id)

    # --- diagnostics ------------------------------------------------------------------------

    async def request_diagnostics(self, cp_id: str, *, log: str | None = None,
                                  since: datetime | None = None, until: datetime | None = None,
                                  retries: int | None = None, retry_interval: int | None = None,
                                  by: str) -> tuple[DiagnosticsRequest, UploadResult]:
        """Make an upload link and ask the charger to upload its diagnostics (or `log`)."""
        if await self._charge_points.get(cp_id) is None:
            raise UnknownChargePoint(cp_id)
        if log is not None and log not in LOGS:
            raise CommandRefused(f"log is one of {', '.join(LOGS)}", "log")
        if since is not None and until is not None and since > until:
            raise CommandRefused("since is after until", "since")
        _check_retries(retries, retry_interval)
        token, digest = new_link_token()
        expires = utcnow() + timedelta(seconds=self.settings.link_seconds)
        request_id = await self.repository.add_diagnostics(
            cp_id=cp_id, kind=log or "diagnostics", token_sha256=digest, expires_at=iso(expires))
        answer = await self._commands.request_upload(cp_id, UploadRequest(
            location=f"{self._base_url}/uploads/{request_id}/{token}", request_id=request_id,
            log=log, since=since, until=until, retries=retries, retry_interval=retry_interval),
            by=by)
        result = answer.result
        await self.repository.settle_diagnostics(
            request_id, outcome=result.outcome.value, reason=result.reason or None,
            name=display_name(answer.file_name, "") or None,
            status=None if result.ok else "Failed",
            expires_at=None if result.ok else iso())
        stored = await self.repository.diagnostics(request_id)
        assert stored is not None
        return stored, answer

    async def diagnostics_list(self, cp_id: str | None = None,
                               limit: int = 50) -> list[DiagnosticsRequest]:
        return await self.repository.diagnostics_list(cp_id, limit)

    async def diagnostics(self, request_id: int) -> DiagnosticsRequest | None:
        return await self.repository.diagnostics(request_id)

    async def receive_upload(self, request_id: int, token: str,
                             incoming: IncomingFile) -> DiagnosticsRequest:
        """Store the charger's upload for a request whose link grants it (`LinkRefused`,
        `TooLarge`, `TooSlow` otherwise)."""
        request = await self.repository.diagnostics(request_id)
        if request is None or not token_fits(token, request.token_sha256):
            raise LinkRefused("unknown", "no such upload link")
        if request.stored_as is not None:
            raise LinkRefused("used", "a file was already uploaded for this request")
        if parse_iso(request.expires_at) <= utcnow():
            raise LinkRefused("expired", "this upload link has expired")
        if not self._claim(self._uploading, request_id):
            raise LinkRefused("busy", "an upload for this request is in progress")
        try:
            stored = await self.uploads.receive(
                incoming.chunks(), limit=self.settings.upload_max_bytes,
                seconds=self.settings.transfer_timeout_seconds)
            fallback = request.name or f"{request.cp_id}-{request.kind}-{request_id}.bin"
            if not await self.repository.attach_upload(
                    request_id, name=display_name(incoming.name, "") or fallback,
                    stored_as=stored.stored_as, size=stored.size, sha256=stored.sha256):
                self.uploads.remove(stored.stored_as)  # pragma: no cover - one claim at a time
                raise LinkRefused("used", "a file was already uploaded for this request")
        finally:
            self._uploading.pop(request_id, None)
        done = await self.repository.diagnostics(request_id)
        assert done is not None
        return done

    def upload_file(self, request: DiagnosticsRequest) -> Path | None:
        """Where an uploaded file is, for the operator's download."""
        return None if request.stored_as is None else self.uploads.file(request.stored_as)

    def _claim(self, claims: dict[int, float], key: int) -> bool:
        now = time.monotonic()
        started = claims.get(key)
        if started is not None and now - started < self.settings.transfer_timeout_seconds:
            return False
        claims[key] = now
        return True


def firmware_service(settings: Settings, db: Database, charge_points: ChargePointRepository,
                     chargers: ChargerControl, audit: EventLogRepository,
                     data_dir: Path) -> FirmwareService:
    """The service of a running strom; links start at `[files] base_url` or the public URL."""
    return FirmwareService(FirmwareRepository(db), charge_points, chargers, audit, data_dir,
                           settings.files, settings.files.base_url or settings.public_url)


def _check_retries(retries: int | None, retry_interval: int | None) -> None:
    if retries is not None and not 0 <= retries <= MAX_RETRIES:
        raise CommandRefused(f"retries is 0 … {MAX_RETRIES}", "retries")
    if retry_interval is not None and not 0 <= retry_interval <= MAX_RETRY_INTERVAL:
        raise CommandRefused(f"retry_interval is 0 … {MAX_RETRY_INTERVAL} s", "retry_interval")

