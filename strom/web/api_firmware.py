"""Admin REST: firmware files and updates, diagnostics and logs, chargers' security events and
certificate signing requests.

`POST /api/v1/firmware` takes the file as the raw body (`?name=`) or as the file part of a
multipart form; `POST /api/v1/firmware/updates` sends it to a charger through a one-time link,
`POST /api/v1/diagnostics` asks a charger for its diagnostics (or a security log) through an
upload link (`strom.chargers.firmware`). A request the charger did not take is 409 (refused,
not supported, not connected), 504 (no answer) or 502 (CALLERROR), with the stored request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from strom.chargers.control import ControlResult, Outcome
from strom.chargers.files import TooLarge, TooSlow
from strom.chargers.firmware import FirmwareService
from strom.chargers.operator import CommandRefused, UnknownChargePoint
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse
from strom.web.uploads import RequestFile
from strom.web.validation import InvalidInput, Strict, read_body, read_query

BY = "admin api"


class UpdateBody(Strict):
    cp_id: str = Field(max_length=64)
    file_id: int = Field(ge=1)
    retrieve_at: AwareDatetime | None = Field(
        None, description="When the charger may fetch it (default: now).")
    retries: int | None = Field(None, ge=0, le=100)
    retry_interval: int | None = Field(None, ge=0, le=86_400, description="Seconds.")
    signing_certificate: str | None = Field(
        None, max_length=5500, description="PEM: a signed update (SignedUpdateFirmware).")
    signature: str | None = Field(None, max_length=800, description="Base64 signature.")


class DiagnosticsBody(Strict):
    cp_id: str = Field(max_length=64)
    log: Literal["DiagnosticsLog", "SecurityLog"] | None = Field(
        None, description="A security extensions' log (GetLog); none: GetDiagnostics.")
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    retries: int | None = Field(None, ge=0, le=100)
    retry_interval: int | None = Field(None, ge=0, le=86_400)


class SignedBody(Strict):
    certificate_chain: str = Field(max_length=10_000, description="PEM, the charger's first.")


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cp_id: str | None = Field(None, description="Only this charge point's.")
    limit: int = Field(50, ge=1, le=500)


class UploadQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(None, max_length=200, description="The file's name (raw body).")


def _service(request: Request) -> FirmwareService:
    require_admin(request)
    return services(request).firmware


def _refused(exc: CommandRefused) -> HTTPException:
    if isinstance(exc, UnknownChargePoint):
        return HTTPException(404, "unknown charge point")
    return InvalidInput([{"loc": ["body", exc.field] if exc.field else ["body"],
                          "msg": exc.message}])


def _answer(result: ControlResult, key: str, record: dict[str, Any]) -> JSONResponse:
    body = {key: record, "outcome": result.outcome.value, "status": result.status}
    if result.ok:
        return JSONResponse(body, status_code=201)
    status = (504 if result.outcome == Outcome.TIMEOUT else 502 if result.code is not None
              else 409)
    return JSONResponse({"error": result.reason, "code": result.code, **body},
                        status_code=status)


async def upload_firmware(request: Request) -> JSONResponse:
    firmware = _service(request)
    query = read_query(request, UploadQuery)
    try:
        added = await firmware.add_file(RequestFile(
            request, firmware.settings.firmware_max_bytes, query.name))
    except TooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except TooSlow as exc:
        raise HTTPException(408, str(exc)) from None
    except CommandRefused as exc:
        raise _refused(exc) from None
    return JSONResponse(added.to_json(), status_code=201)


async def list_firmware(request: Request) -> JSONResponse:
    return JSONResponse({"items": [f.to_json() for f in await _service(request).files()]})


async def start_update(request: Request) -> JSONResponse:
    firmware = _service(request)
    body = await read_body(request, UpdateBody)
    try:
        update, result = await firmware.start_update(
            body.cp_id, body.file_id, retrieve_at=body.retrieve_at, retries=body.retries,
            retry_interval=body.retry_interval, signing_certificate=body.signing_certificate,
            signature=body.signature, by=BY)
    except CommandRefused as exc:
        raise _refused(exc) from None
    return _answer(result, "update", update.to_json())


async def list_updates(request: Request) -> JSONResponse:
    firmware = _service(request)
    query = read_query(request, ListQuery)
    found = await firmware.updates(query.cp_id, query.limit)
    return JSONResponse({"items": [u.to_json() for u in found]})


async def request_diagnostics(request: Request) -> JSONResponse:
    firmware = _service(request)
    body = await read_body(request, DiagnosticsBody)
    try:
        record, answer = await firmware.request_diagnostics(
            body.cp_id, log=body.log, since=body.since, until=body.until,
            retries=body.retries, retry_interval=body.retry_interval, by=BY)
    except CommandRefused as exc:
        raise _refused(exc) from None
    return _answer(answer.result, "diagnostics", record.to_json())


async def list_diagnostics(request: Request) -> JSONResponse:
    firmware = _service(request)
    query = read_query(request, ListQuery)
    found = await firmware.diagnostics_list(query.cp_id, query.limit)
    return JSONResponse({"items": [d.to_json() for d in found]})


async def _one(request: Request) -> tuple[FirmwareService, Any]:
    firmware = _service(request)
    raw = request.path_params["diagnostics_id"]
    found = await firmware.diagnostics(int(raw)) if raw.isdigit() and len(raw) < 12 else None
    if found is None:
        raise HTTPException(404, "no such diagnostics request")
    return firmware, found


async def one_diagnostics(request: Request) -> JSONResponse:
    _, found = await _one(request)
    return JSONResponse(found.to_json())


async def diagnostics_file(request: Request) -> FileResponse:
    firmware, found = await _one(request)
    path = firmware.upload_file(found)
    if path is None:
        raise HTTPException(404, "nothing was uploaded for this request yet")
    return FileResponse(path, media_type="application/octet-stream", filename=found.name,
                        headers={"Cache-Control": "no-store"})


async def security_events(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    cp_id = request.path_params["cp_id"]
    if not await svc.charge_points.exists(cp_id):
        raise HTTPException(404, "unknown charge point")
    query = read_query(request, ListQuery)
    found = await svc.event_log.recent(cp_id, query.limit, kind="security_event")
    return JSONResponse({"items": [{"at": e["at"], **e["payload"]} for e in found]})


async def certificate_requests(request: Request) -> JSONResponse:
    require_admin(request)
    certificates = services(request).certificates
    query = read_query(request, ListQuery)
    found = await certificates.requests(query.cp_id, query.limit)
    return JSONResponse({"items": [c.to_json() for c in found]})


async def send_certificate(request: Request) -> JSONResponse:
    require_admin(request)
    certificates = services(request).certificates
    raw = request.path_params["request_id"]
    body = await read_body(request, SignedBody)
    if not raw.isdigit() or len(raw) > 12:
        raise HTTPException(404, "no such certificate request")
    try:
        stored, result = await certificates.send_signed(int(raw), body.certificate_chain, by=BY)
    except CommandRefused as exc:
        if exc.field == "request_id":
            raise HTTPException(404 if exc.message.startswith("no ") else 409,
                                exc.message) from None
        raise _refused(exc) from None
    return _answer(result, "request", stored.to_json())


routes = [
    Route("/api/v1/firmware", list_firmware, methods=["GET"]),
    Route("/api/v1/firmware", upload_firmware, methods=["POST"]),
    Route("/api/v1/firmware/updates", list_updates, methods=["GET"]),
    Route("/api/v1/firmware/updates", start_update, methods=["POST"]),
    Route("/api/v1/diagnostics", list_diagnostics, methods=["GET"]),
    Route("/api/v1/diagnostics", request_diagnostics, methods=["POST"]),
    Route("/api/v1/diagnostics/{diagnostics_id}", one_diagnostics, methods=["GET"]),
    Route("/api/v1/diagnostics/{diagnostics_id}/file", diagnostics_file, methods=["GET"]),
    Route("/api/v1/charge-points/{cp_id}/security-events", security_events, methods=["GET"]),
    Route("/api/v1/certificates", certificate_requests, methods=["GET"]),
    Route("/api/v1/certificates/{request_id}/signed", send_certificate, methods=["POST"]),
]
