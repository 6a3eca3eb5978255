"""The links chargers use: firmware downloads and diagnostics uploads (HTTP only; FTP, which
OCPP 1.6 also allows, is not served).

`GET /firmware/{update id}/{token}[/{name}]` sends the firmware of one update, once; `PUT` or
`POST /uploads/{request id}/{token}[/{name}]` stores one diagnostics or log file (raw body or
a multipart form's file part). What each link grants: `strom.chargers.firmware`. Unknown or
wrong links are 404, spent or expired ones 410, a transfer in progress 409, too large 413,
too slow 408. Paths carry tokens: nothing here logs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from strom.chargers.files import CHUNK, TooLarge, TooSlow
from strom.chargers.firmware import FirmwareService, LinkRefused
from strom.web.auth import services
from strom.web.responses import JSONResponse
from strom.web.uploads import RequestFile

_STATUS = {"unknown": 404, "expired": 410, "used": 410, "busy": 409}


def _service(request: Request) -> FirmwareService:
    return services(request).firmware


def _link(request: Request, key: str) -> tuple[int, str]:
    raw, token = request.path_params[key], request.path_params["token"]
    if not raw.isdigit() or len(raw) > 12 or len(token) > 64:
        raise HTTPException(404, "no such link")
    return int(raw), token


async def download_firmware(request: Request) -> Response:
    firmware = _service(request)
    update_id, token = _link(request, "update_id")
    try:
        download = await firmware.claim_download(update_id, token)
    except LinkRefused as exc:
        raise HTTPException(_STATUS[exc.why], exc.message) from None
    headers = {"Content-Length": str(download.size), "Cache-Control": "no-store",
               "Content-Disposition": f'attachment; filename="{download.name}"'}
    if request.method == "HEAD":
        await firmware.finish_download(update_id, complete=False)
        return Response(headers=headers, media_type="application/octet-stream")

    async def body() -> AsyncIterator[bytes]:
        complete = False
        try:
            async with await anyio.open_file(download.path, "rb") as handle:
                while chunk := await handle.read(CHUNK):
                    yield chunk
            complete = True  # every byte handed to the server
        finally:
            # Shielded: a download cancelled by a closed connection still releases its claim.
            with anyio.CancelScope(shield=True):
                await firmware.finish_download(update_id, complete=complete)

    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)


async def receive_upload(request: Request) -> JSONResponse:
    firmware = _service(request)
    request_id, token = _link(request, "request_id")
    incoming = RequestFile(request, firmware.settings.upload_max_bytes,
                           request.path_params.get("name"))
    try:
        stored = await firmware.receive_upload(request_id, token, incoming)
    except LinkRefused as exc:
        raise HTTPException(_STATUS[exc.why], exc.message) from None
    except TooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except TooSlow as exc:
        raise HTTPException(408, str(exc)) from None
    return JSONResponse({"received": stored.size, "sha256": stored.sha256}, status_code=201)


routes = [
    Route("/firmware/{update_id}/{token}", download_firmware, methods=["GET"]),
    Route("/firmware/{update_id}/{token}/{name}", download_firmware, methods=["GET"]),
    Route("/uploads/{request_id}/{token}", receive_upload, methods=["PUT", "POST"]),
    Route("/uploads/{request_id}/{token}/{name}", receive_upload, methods=["PUT", "POST"]),
]
