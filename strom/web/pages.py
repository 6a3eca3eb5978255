"""Public pages: `/` (all chargers), `/cp/{id}` (pay QR, price, live status), its sticker."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from strom import qr
from strom.lnurl.links import pay_links
from strom.services import Services
from strom.store.charge_points import ChargePoint
from strom.tariffs.model import describe
from strom.views import charge_point_json
from strom.web.auth import services
from strom.web.templating import STATIC_DIR, templates


async def _charge_point(request: Request) -> tuple[Services, ChargePoint]:
    svc = services(request)
    cp = await svc.charge_points.get(request.path_params["cp_id"])
    if cp is None:
        raise HTTPException(404, "unknown charge point")
    return svc, cp


async def index(request: Request) -> Response:
    svc = services(request)
    assert svc.tariffs is not None
    query = request.query_params.get("q", "").strip().lower()
    status = request.query_params.get("status", "")
    shown = []
    for cp in await svc.charge_points.list():
        if query and query not in cp.id.lower() and query not in cp.name.lower():
            continue
        if status and cp.status != status:
            continue
        view = charge_point_json(svc, cp)
        view["price_words"] = describe(svc.tariffs.current(cp))
        shown.append(view)
    return templates.TemplateResponse(request, "index.html", {
        "charge_points": shown, "q": request.query_params.get("q", ""), "status": status})


async def charge_point_page(request: Request) -> Response:
    svc, cp = await _charge_point(request)
    assert svc.tariffs is not None
    links = pay_links(svc.settings.public_url, cp.id)
    dynamic = svc.tariffs.is_dynamic(cp)
    return templates.TemplateResponse(request, "charge_point.html", {
        "cp": charge_point_json(svc, cp), "links": links,
        "price_words": describe(svc.tariffs.current(cp)),
        "schedule": svc.tariffs.schedule(cp) if dynamic else [],
        "feed_status": svc.tariffs.status() if dynamic else None,
        "qr_svg": qr.svg(links.web, title=f"Pay for charging at {cp.name}")})


async def sticker(request: Request) -> Response:
    svc, cp = await _charge_point(request)
    assert svc.tariffs is not None
    links = pay_links(svc.settings.public_url, cp.id)
    return templates.TemplateResponse(request, "sticker.html", {
        "cp": charge_point_json(svc, cp), "links": links,
        "price_words": describe(svc.tariffs.current(cp)),
        "qr_svg": qr.svg(links.web, scale=10, title=f"Pay for charging at {cp.name}")})


async def qr_svg(request: Request) -> Response:
    svc, cp = await _charge_point(request)
    return Response(qr.svg(pay_links(svc.settings.public_url, cp.id).web),
                    media_type="image/svg+xml")


routes = [
    Route("/", index),
    Route("/cp/{cp_id}", charge_point_page),
    Route("/cp/{cp_id}/sticker", sticker),
    Route("/cp/{cp_id}/qr.svg", qr_svg),
    Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
]
