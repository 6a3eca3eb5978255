"""Admin REST: `/api/v1/charge-points` — list, create, show, edit, remove charge points."""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strom.container import Services
from strom.errors import UserError
from strom.keys import ensure_cp_key, keys_path, remove_cp_key
from strom.ocpp.protocols import SUPPORTED, parse_allowed
from strom.passthrough.config import UpstreamError, merged_upstream
from strom.security import hash_password
from strom.store.charge_points import (
    CERT_SHA256_PATTERN,
    CP_ID_PATTERN,
    MIN_PASSWORD,
    ChargerRecord,
)
from strom.web.admin_views import admin_views
from strom.web.api_tariffs import TariffOverride, check_override
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse
from strom.web.validation import (
    InvalidInput,
    PageQuery,
    Strict,
    Whole,
    page,
    read_body,
    read_query,
)

# Names show up in pages, terminals and nostr profiles: no control characters.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"


class Upstream(Strict):
    """Passthrough: the backend (CSMS) the charger stays connected to through strom."""

    url: str = Field(max_length=2000, description="ws:// or wss:// URL of the backend for "
                     "this charger (with its id as the backend knows it).")
    password: str | None = Field(None, min_length=1, max_length=200, description=(
        "Basic-auth password strom presents as the charger; never shown again. Omitted in an "
        "update: the stored one is kept for the same URL."))
    subprotocol: Literal["ocpp1.6", "ocpp2.0.1"] = Field("ocpp1.6", description=(
        "The OCPP the charger and its backend speak (strom relays, never translates)."))
    client_cert: str | None = Field(None, max_length=1000,
                                    description="PEM file of a TLS client certificate.")
    client_key: str | None = Field(None, max_length=1000, description="Its key's PEM file.")
    lightning: bool = Field(True, description="false: a pure proxy, no lightning sessions.")


class ChargePointCreate(Strict):
    id: str = Field(pattern=CP_ID_PATTERN, description="1-48 letters, digits, '.', '_', '-'.")
    name: str | None = Field(None, min_length=1, max_length=100, pattern=NAME_PATTERN)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    connectors: Whole = Field(1, ge=1, le=16)
    password: str | None = Field(None, min_length=MIN_PASSWORD, max_length=200,
                                 description="OCPP Basic-auth password (security profile 1).")
    tariff: TariffOverride | None = None
    ocpp_protocols: list[Literal[SUPPORTED]] | None = Field(  # type: ignore[valid-type]
        None, min_length=1, max_length=3,
        description="OCPP subprotocols it may use (default: all); strom picks the highest.")
    security_profile: Literal[1, 2, 3] | None = Field(
        None, description="1 password, 2 password over wss only, 3 a TLS client certificate "
                          "for this id from [ocpp] tls_client_ca.")
    client_cert_sha256: str | None = Field(None, pattern=CERT_SHA256_PATTERN,
                                           description="Profile 3: the one certificate let in.")
    boot: Literal["Accepted", "Rejected"] | None = Field(
        None, description="Its BootNotification's answer; Rejected refuses all it sends.")
    upstream: Upstream | None = None


class ChargePointUpdate(Strict):
    """Only the keys given change; `password: null` removes it, `tariff: null` clears it,
    `upstream: null` makes strom the charger's only central system (on its next connection)."""

    name: str | None = Field(None, min_length=1, max_length=100, pattern=NAME_PATTERN)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    password: str | None = Field(None, min_length=MIN_PASSWORD, max_length=200)
    tariff: TariffOverride | None = None
    ocpp_protocols: list[Literal[SUPPORTED]] | None = Field(  # type: ignore[valid-type]
        None, min_length=1, max_length=3, description="`null`: all.")
    security_profile: Literal[1, 2, 3] | None = None
    client_cert_sha256: str | None = Field(None, pattern=CERT_SHA256_PATTERN,
                                           description="`null`: no pin.")
    boot: Literal["Accepted", "Rejected"] | None = Field(
        None, description="At its next BootNotification; `null`: Accepted.")
    upstream: Upstream | None = None


def _upstream(given: Upstream | None, stored: dict[str, object] | None
              ) -> dict[str, object] | None:
    try:
        return merged_upstream(given.model_dump() if given else None, stored)
    except UpstreamError as exc:
        raise InvalidInput([{"loc": ["body", "upstream"], "msg": str(exc)}]) from None


async def view(svc: Services, cp: ChargerRecord) -> dict[str, object]:
    return (await admin_views(svc, [cp]))[0]


async def _charge_point(svc: Services, cp_id: str) -> ChargerRecord:
    cp = await svc.charge_points.get(cp_id)
    if cp is None:
        raise HTTPException(404, "unknown charge point")
    return cp


async def list_charge_points(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    query = read_query(request, PageQuery)
    cps = await svc.charge_points.list()
    items = await admin_views(svc, cps[query.offset:query.offset + query.limit])
    return JSONResponse(page(items, len(cps), query))


async def create_charge_point(request: Request) -> JSONResponse:
    """Register a charge point and create its nostr key."""
    require_admin(request)
    svc = services(request)
    body = await read_body(request, ChargePointCreate)
    tariff = check_override(svc, body.tariff) if body.tariff else None
    password_hash = await asyncio.to_thread(hash_password, body.password) if body.password else None
    upstream = _upstream(body.upstream, None)
    try:
        cp = await svc.charge_points.add(
            body.id, name=body.name or body.id, lat=body.lat, lon=body.lon,
            num_connectors=body.connectors, password_hash=password_hash, tariff=tariff or None,
            ocpp_protocols=parse_allowed(body.ocpp_protocols),
            security_profile=body.security_profile, client_cert_sha256=body.client_cert_sha256,
            boot_status=body.boot)
    except UserError as exc:
        raise HTTPException(409, str(exc)) from None
    if upstream:
        await svc.charge_points.update(cp.id, upstream=upstream)
        cp = await _charge_point(svc, cp.id)
    await asyncio.to_thread(ensure_cp_key, keys_path(svc.data_dir, svc.settings.nostr.keys_file),
                            cp.id)
    return JSONResponse(await view(svc, cp), status_code=201)


async def get_charge_point(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    return JSONResponse(await view(svc, await _charge_point(svc, request.path_params["cp_id"])))


async def update_charge_point(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    cp = await _charge_point(svc, request.path_params["cp_id"])
    body = await read_body(request, ChargePointUpdate)
    given = body.model_fields_set
    changes: dict[str, object] = {k: getattr(body, k) for k in ("name", "lat", "lon")
                                  if k in given and getattr(body, k) is not None}
    if "password" in given:
        changes["password_hash"] = (await asyncio.to_thread(hash_password, body.password)
                                    if body.password else None)
    if "tariff" in given:
        changes["tariff"] = (check_override(svc, body.tariff) if body.tariff else None) or None
    if "ocpp_protocols" in given:
        changes["ocpp_protocols"] = parse_allowed(body.ocpp_protocols)
    for key in ("security_profile", "client_cert_sha256"):
        if key in given:
            value = getattr(body, key)
            changes[key] = value.lower() if isinstance(value, str) else value
    if "upstream" in given:
        changes["upstream"] = _upstream(body.upstream, cp.upstream)
    if "boot" in given:
        changes["boot_status"] = body.boot
    await svc.charge_points.update(cp.id, **changes)
    return JSONResponse(await view(svc, await _charge_point(svc, cp.id)))


async def delete_charge_point(request: Request) -> Response:
    """Remove a charge point and its key; refused while a session holds one of its connectors."""
    require_admin(request)
    svc = services(request)
    cp = await _charge_point(svc, request.path_params["cp_id"])
    current = (await view(svc, cp))["sessions"]
    if current:
        raise HTTPException(409, f"{cp.id} has a running session; stop it first")
    await svc.charge_points.remove(cp.id)
    await asyncio.to_thread(remove_cp_key, keys_path(svc.data_dir, svc.settings.nostr.keys_file),
                            cp.id)
    return Response(status_code=204)


routes = [
    Route("/api/v1/charge-points", list_charge_points),
    Route("/api/v1/charge-points", create_charge_point, methods=["POST"]),
    Route("/api/v1/charge-points/{cp_id}", get_charge_point),
    Route("/api/v1/charge-points/{cp_id}", update_charge_point, methods=["PATCH"]),
    Route("/api/v1/charge-points/{cp_id}", delete_charge_point, methods=["DELETE"]),
]
