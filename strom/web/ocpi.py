"""OCPI 2.2.1 over HTTP (`/ocpi/...`), the CPO role: translates requests to `Services.ocpi`
and answers in the OCPI envelope. Every answer echoes `X-Request-ID` and `X-Correlation-ID`;
bad input is an OCPI 2xxx code, anything unexpected 3000 — never a 500 or a traceback."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strom.ocpi import VERSION
from strom.ocpi.envelope import (
    CLIENT_ERROR,
    INVALID_PARAMETERS,
    SERVER_ERROR,
    UNKNOWN_LOCATION,
    OcpiError,
    Unauthorized,
    envelope,
)
from strom.ocpi.parties import Caller
from strom.ocpi.service import COMMAND_TIMEOUT, OcpiService
from strom.timeutil import parse_iso
from strom.web.auth import services
from strom.web.responses import JSONResponse
from strom.web.validation import limited_body

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_LIMIT = 100  # objects per page at most (X-Limit)
DEFAULT_LIMIT = 50

Handler = Callable[[Request, Caller], Awaitable[Any]]

# Modules strom serves as CPO, and their interface role (2.2.1 version details).
MODULES = [("credentials", "SENDER"), ("locations", "SENDER"), ("tariffs", "SENDER"),
           ("sessions", "SENDER"), ("cdrs", "SENDER"), ("commands", "RECEIVER"),
           ("tokens", "RECEIVER"),
           ("lightning", "RECEIVER")]  # lightning: strom's custom module (ocpi_lightning.py)


def _ocpi(request: Request) -> OcpiService:
    return services(request).ocpi


class _Page:
    """An answer with pagination headers."""

    def __init__(self, data: list[Any], headers: dict[str, str]) -> None:
        self.data = data
        self.headers = headers


def endpoint(handler: Handler, *, token_a: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate (token C; token A too where `token_a`), run, wrap in the envelope."""

    async def run(request: Request) -> Response:
        request_id = request.headers.get("x-request-id", "")[:64] or str(uuid.uuid4())
        correlation = request.headers.get("x-correlation-id", "")[:64] or request_id
        headers = {"X-Request-ID": request_id, "X-Correlation-ID": correlation}
        try:
            caller = await _ocpi(request).parties.authenticate(
                request.headers.get("authorization"))
            if not caller.registered and not token_a:
                raise Unauthorized("this module needs the token of a registered party")
            result = await handler(request, caller)
            if isinstance(result, _Page):
                headers.update(result.headers)
                result = result.data
            return JSONResponse(envelope(result), headers=headers)
        except OcpiError as exc:
            return JSONResponse(envelope(None, exc.status_code, exc.message),
                                status_code=exc.http_status, headers=headers)
        except Exception:
            log.exception("OCPI %s %s failed", request.method, handler.__name__)
            return JSONResponse(envelope(None, SERVER_ERROR, "internal error"), headers=headers)

    run.__name__ = handler.__name__
    return run


async def read_json(request: Request) -> Any:
    """The JSON body, read no further than `MAX_BODY` bytes (the validation module's rule),
    or OCPI 2001."""
    try:
        body = await limited_body(request, MAX_BODY)
    except HTTPException:
        raise OcpiError(INVALID_PARAMETERS, f"body larger than {MAX_BODY} bytes", 413) from None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise OcpiError(INVALID_PARAMETERS, "the body is not JSON") from None


async def read_object(request: Request) -> dict[str, Any]:
    """The JSON body as `read_json` reads it, which must be an object (else OCPI 2001)."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise OcpiError(INVALID_PARAMETERS, "the body is not an object")
    return body


def _base(request: Request) -> str:
    return f"{services(request).settings.public_url}/ocpi"


# --- versions --------------------------------------------------------------------------


async def versions(request: Request, caller: Caller) -> Any:
    return [{"version": VERSION, "url": f"{_base(request)}/{VERSION}"}]


async def version_details(request: Request, caller: Caller) -> Any:
    base = f"{_base(request)}/{VERSION}"
    return {"version": VERSION, "endpoints": [
        {"identifier": name, "role": role, "url": f"{base}/{name}"} for name, role in MODULES]}


# --- credentials -----------------------------------------------------------------------


async def credentials(request: Request, caller: Caller) -> Any:
    ocpi = _ocpi(request)
    if request.method == "GET":
        if not caller.registered:
            raise Unauthorized("register first (POST)")
        # The eMSP's token C is not kept in clear: GET shows strom's details, not the token.
        return ocpi.parties.own_credentials("")
    if request.method == "POST":
        if caller.registered:  # 2.2.1: a registered party updates with PUT
            raise OcpiError(CLIENT_ERROR, "already registered: use PUT", 405)
        return await ocpi.parties.register(caller, await read_json(request))
    if not caller.registered:
        raise OcpiError(CLIENT_ERROR, "not registered", 405)
    if request.method == "PUT":
        return await ocpi.parties.register(caller, await read_json(request))
    await ocpi.unregister(caller)  # DELETE
    return None


# --- Locations and Tariffs -------------------------------------------------------------


def _moment(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        raise OcpiError(INVALID_PARAMETERS, f"{name}: not an ISO 8601 time") from None


def _number(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name, str(default))
    if not text.isdigit() or len(text) > 9:
        raise OcpiError(INVALID_PARAMETERS, f"{name}: not a whole number ≥ 0")
    return int(text)


def paginate(request: Request, objects: list[dict[str, Any]]) -> _Page:
    """offset/limit/date_from/date_to over `objects` (by `last_updated`), with `Link`,
    `X-Total-Count` and `X-Limit` (OCPI 2.2.1 part 4.1.3)."""
    date_from, date_to = _moment(request, "date_from"), _moment(request, "date_to")
    offset = _number(request, "offset", 0)
    limit = min(_number(request, "limit", DEFAULT_LIMIT), MAX_LIMIT)

    def updated(obj: dict[str, Any]) -> datetime:
        return parse_iso(obj["last_updated"])

    chosen = [obj for obj in objects
              if (date_from is None or updated(obj) >= date_from)
              and (date_to is None or updated(obj) < date_to)]
    page = chosen[offset:offset + limit]
    headers = {"X-Total-Count": str(len(chosen)), "X-Limit": str(MAX_LIMIT)}
    if offset + limit < len(chosen):
        query = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
        query.update(offset=str(offset + limit), limit=str(limit))
        url = f"{services(request).settings.public_url}{request.url.path}?{urlencode(query)}"
        headers["Link"] = f'<{url}>; rel="next"'
    return _Page(page, headers)


async def locations(request: Request, caller: Caller) -> Any:
    ocpi = _ocpi(request)
    location_id = request.path_params.get("location_id")
    if location_id is None:
        return paginate(request, await ocpi.locations())
    found = await ocpi.location(location_id)
    evse_uid = request.path_params.get("evse_uid")
    if evse_uid is None:
        return found
    evse = _one(found["evses"], "uid", evse_uid, "EVSE")
    connector_id = request.path_params.get("connector_id")
    if connector_id is None:
        return evse
    return _one(evse["connectors"], "id", connector_id, "connector")


def _one(objects: list[dict[str, Any]], key: str, wanted: str, what: str) -> dict[str, Any]:
    """The object whose `key` is `wanted`, or OCPI 2003 naming `what` is unknown."""
    found = next((obj for obj in objects if obj[key] == wanted), None)
    if found is None:
        raise OcpiError(UNKNOWN_LOCATION, f"unknown {what} {wanted}", 404)
    return found


async def tariffs(request: Request, caller: Caller) -> Any:
    return paginate(request, await _ocpi(request).tariffs())


async def sessions(request: Request, caller: Caller) -> Any:
    return paginate(request, await _ocpi(request).sessions_of(caller))


async def cdrs(request: Request, caller: Caller) -> Any:
    return paginate(request, await _ocpi(request).cdrs_of(caller))


async def tokens(request: Request, caller: Caller) -> Any:
    """The eMSP's token list: GET, PUT a token, PATCH a change (`?type=`, default RFID)."""
    token_list = _ocpi(request).tokens
    where = (request.path_params["country_code"], request.path_params["party_id"],
             request.path_params["token_uid"])
    type_ = request.query_params.get("type", "RFID")
    if request.method == "GET":
        return await token_list.get(caller, *where, type_)
    body = await read_json(request)
    if request.method == "PUT":
        await token_list.put(caller, *where, body)
    else:
        await token_list.patch(caller, *where, type_, body)
    return None


# --- Commands --------------------------------------------------------------------------


async def commands(request: Request, caller: Caller) -> Any:
    command = request.path_params["command"]
    body = await read_object(request)
    response_url = body.get("response_url")
    if not isinstance(response_url, str) or not response_url.startswith(("http://", "https://")) \
            or len(response_url) > 255:
        raise OcpiError(INVALID_PARAMETERS, "response_url: an http(s) URL is required")
    ocpi = _ocpi(request)
    if command == "UNLOCK_CONNECTOR":
        await ocpi.unlock(caller, body, response_url)
    elif command == "START_SESSION":
        if not await ocpi.start_session(caller, body, response_url):
            return _answer("REJECTED", "the EVSE is not available")
    elif command == "STOP_SESSION":
        if not await ocpi.stop_session(caller, body, response_url):
            return _answer("UNKNOWN_SESSION")
    elif command == "RESERVE_NOW":
        if not await ocpi.reserve_now(caller, body, response_url):
            return _answer("NOT_SUPPORTED", "this charger takes no reservations")
    elif command == "CANCEL_RESERVATION":
        if not await ocpi.cancel_reservation(caller, body, response_url):
            return _answer("REJECTED", "no reservation of yours by that id")
    else:
        return _answer("NOT_SUPPORTED", f"{command} is not supported")
    return _answer("ACCEPTED")


def _answer(result: str, why: str | None = None) -> dict[str, Any]:
    """The CommandResponse (2.2.1 part 13.4.2), with a message when `why`."""
    answer: dict[str, Any] = {"result": result, "timeout": COMMAND_TIMEOUT}
    if why is not None:
        answer["message"] = [{"language": "en", "text": why}]
    return answer


_prefix = f"/ocpi/{VERSION}"
routes = [
    Route("/ocpi/versions", endpoint(versions, token_a=True), methods=["GET"]),
    Route(_prefix, endpoint(version_details, token_a=True), methods=["GET"]),
    Route(f"{_prefix}/credentials", endpoint(credentials, token_a=True),
          methods=["GET", "POST", "PUT", "DELETE"]),
    Route(f"{_prefix}/locations", endpoint(locations), methods=["GET"]),
    Route(f"{_prefix}/locations/{{location_id}}", endpoint(locations), methods=["GET"]),
    Route(f"{_prefix}/locations/{{location_id}}/{{evse_uid}}", endpoint(locations),
          methods=["GET"]),
    Route(f"{_prefix}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}",
          endpoint(locations), methods=["GET"]),
    Route(f"{_prefix}/tariffs", endpoint(tariffs), methods=["GET"]),
    Route(f"{_prefix}/sessions", endpoint(sessions), methods=["GET"]),
    Route(f"{_prefix}/cdrs", endpoint(cdrs), methods=["GET"]),
    Route(f"{_prefix}/commands/{{command}}", endpoint(commands), methods=["POST"]),
    Route(f"{_prefix}/tokens/{{country_code}}/{{party_id}}/{{token_uid}}", endpoint(tokens),
          methods=["GET", "PUT", "PATCH"]),
]
