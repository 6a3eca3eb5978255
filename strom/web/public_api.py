"""`/api/v1/public/charge-points[/{id}]`: what anyone may know about the chargers."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from strom.views import charge_point_json, market_json
from strom.web.auth import services
from strom.web.responses import JSONResponse


async def list_charge_points(request: Request) -> JSONResponse:
    svc = services(request)
    return JSONResponse([charge_point_json(svc, cp) for cp in await svc.charge_points.list()])


async def get_charge_point(request: Request) -> JSONResponse:
    svc = services(request)
    cp = await svc.charge_points.get(request.path_params["cp_id"])
    if cp is None:
        raise HTTPException(404, "unknown charge point")
    # The full schedule lives here: the nostr status (30333) carries only the next slots.
    return JSONResponse({**charge_point_json(svc, cp), **(market_json(svc, cp) or {})})


routes = [
    Route("/api/v1/public/charge-points", list_charge_points),
    Route("/api/v1/public/charge-points/{cp_id}", get_charge_point),
]
