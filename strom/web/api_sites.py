"""Admin REST: `/api/v1/sites` — sites (chargers behind one grid connection) and their power.

A site has a limit (its fuse, e.g. 22 kW) that strom shares among the sessions running on its
chargers (`strom.chargers.site_power`); each charger may have a cap of its own. The answers
show the share each running session got, whether its charger took it (and what it reads
back), and the chargers that refuse limits. Every change re-balances the site at once.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strom.chargers.power import DEFAULT_MIN_W, MAX_SITE_W
from strom.chargers.site_power import SitePower
from strom.store.charge_points import CP_ID_PATTERN
from strom.store.sites import Site
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse
from strom.web.validation import InvalidInput, Strict, Whole, read_body

SITE_ID = re.compile(CP_ID_PATTERN)


class SiteBody(Strict):
    """A site's grid connection: the power its chargers share."""

    name: str | None = Field(None, max_length=100, description="Display name (default: the id).")
    limit_w: Whole = Field(ge=1, le=MAX_SITE_W, description="The site's limit in W (22000: a"
                           " 32 A three-phase house connection).")
    min_w: Whole = Field(DEFAULT_MIN_W, ge=0, le=MAX_SITE_W, description="The least a session"
                         " charges at (1380 W: 6 A on one phase); a session that cannot get it"
                         " waits at 0 W.")

    @model_validator(mode="after")
    def _min_below_limit(self) -> SiteBody:
        if self.min_w > self.limit_w:
            raise ValueError("min_w must not exceed limit_w")
        return self


class SiteChargerBody(Strict):
    max_w: Whole | None = Field(None, ge=1, le=MAX_SITE_W, description="The whole charger's cap"
                                " in W (a ChargePointMaxProfile); null: only the site's limit.")


def site_json(site: Site, power: SitePower) -> dict[str, Any]:
    """A site with its chargers, the share each running session got and who refuses limits."""
    refusing = power.refusing()
    allocations = power.allocations(site.id)
    return {
        "id": site.id, "name": site.name, "limit_w": site.limit_w, "min_w": site.min_w,
        "created_at": site.created_at,
        "chargers": [{"cp_id": c.cp_id, "max_w": c.max_w, "refuses_limits": refusing.get(c.cp_id)}
                     for c in site.chargers],
        "allocated_w": sum(a.watts for a in allocations),
        "allocations": [{"cp_id": a.cp_id, "connector_id": a.connector_id,
                         "transaction_id": a.transaction_id, "watts": a.watts,
                         "waiting": a.waiting, "outcome": a.outcome, "reason": a.reason or None,
                         "read_back_w": a.read_back_w} for a in allocations],
    }


def _site_id(request: Request) -> str:
    site_id = request.path_params["site_id"]
    if not SITE_ID.match(site_id):
        raise InvalidInput([{"loc": ["path", "site_id"], "msg": "a site id is 1-48 letters,"
                             " digits, '.', '_' or '-'"}])
    return site_id


async def _existing(request: Request) -> tuple[SitePower, Site]:
    require_admin(request)
    power = services(request).site_power
    site = await power.site(_site_id(request))
    if site is None:
        raise HTTPException(404, "unknown site")
    return power, site


async def list_sites(request: Request) -> JSONResponse:
    require_admin(request)
    power = services(request).site_power
    return JSONResponse({"items": [site_json(s, power) for s in await power.sites()]})


async def get_site(request: Request) -> JSONResponse:
    power, site = await _existing(request)
    return JSONResponse(site_json(site, power))


async def put_site(request: Request) -> JSONResponse:
    """Define a site or change its limit (one answer for both: PUT is idempotent)."""
    require_admin(request)
    power = services(request).site_power
    site_id = _site_id(request)
    body = await read_body(request, SiteBody)
    site = await power.define(site_id, name=body.name or site_id, limit_w=body.limit_w,
                              min_w=body.min_w)
    return JSONResponse(site_json(site, power))


async def delete_site(request: Request) -> Response:
    """Remove a site: its sessions' limits and its chargers' caps are lifted."""
    power, site = await _existing(request)
    await power.remove(site)
    return Response(status_code=204)


async def put_charger(request: Request) -> JSONResponse:
    """Put a charger in the site (out of any other), with its own cap or none."""
    power, site = await _existing(request)
    cp_id = request.path_params["cp_id"]
    if await services(request).charge_points.get(cp_id) is None:
        raise HTTPException(404, "unknown charge point")
    body = await read_body(request, SiteChargerBody)
    return JSONResponse(site_json(await power.join(site.id, cp_id, body.max_w), power))


async def delete_charger(request: Request) -> Response:
    """Take a charger out of the site: its sessions' limits and its cap are lifted."""
    power, site = await _existing(request)
    if not await power.leave(site.id, request.path_params["cp_id"]):
        raise HTTPException(404, "the charge point is not in this site")
    return Response(status_code=204)


SITES = "/api/v1/sites"
routes = [
    Route(SITES, list_sites),
    Route(SITES + "/{site_id}", get_site),
    Route(SITES + "/{site_id}", put_site, methods=["PUT"]),
    Route(SITES + "/{site_id}", delete_site, methods=["DELETE"]),
    Route(SITES + "/{site_id}/chargers/{cp_id}", put_charger, methods=["PUT"]),
    Route(SITES + "/{site_id}/chargers/{cp_id}", delete_charger, methods=["DELETE"]),
]
