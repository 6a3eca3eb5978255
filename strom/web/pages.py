"""Public pages: `/` (all chargers), `/cp/{id}` (pay QR, price, live status), its sticker."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from strom import qr
from strom.container import Services
from strom.lightning.dev import DevWallet
from strom.lnurl.codec import lnurl_encode
from strom.lnurl.links import pay_links
from strom.sessions.refusals import Refused
from strom.store.charge_points import ChargerRecord
from strom.tariffs.model import describe
from strom.tariffs.slow import SLOW
from strom.views import charge_point_json
from strom.web.auth import services
from strom.web.page_response import not_found, qr_markup, render
from strom.web.page_views import availability
from strom.web.templating import STATIC_DIR
from strom.web.tile_map import MapPoint, tile_map, tile_origin

# The filter offers every status a charger can show (contract §5), in the order drivers care.
STATUSES = ("Available", "Preparing", "Charging", "SuspendedEV", "Finishing", "Unavailable",
            "Faulted", "Offline")


def _map_settings(svc: Services) -> tuple[str, str]:
    # Empty (no map, no outside request) unless configured.
    http = svc.settings.http
    return http.map_tiles_url, http.map_attribution


def _matches(cp: ChargerRecord, query: str, status: str) -> bool:
    text = f"{cp.id} {cp.name}".lower()
    return all(word in text for word in query.split()) and (not status or cp.status == status)


async def index(request: Request) -> Response:
    svc = services(request)
    query = request.query_params.get("q", "").strip()
    status = request.query_params.get("status", "")
    status = status if status in STATUSES else ""
    shown = []
    for cp in await svc.charge_points.list():
        if _matches(cp, query.lower(), status):
            view = charge_point_json(svc, cp)
            view["price_words"] = describe(svc.tariffs.current(cp))
            shown.append(view)
    tiles, attribution = _map_settings(svc)
    the_map = tile_map([MapPoint(cp["id"], cp["name"], cp["status"], cp["location"]["lat"],
                                 cp["location"]["lon"]) for cp in shown], tiles)
    return render(request, "index.html", {
        "charge_points": shown, "q": query, "status": status, "statuses": STATUSES,
        "map": the_map, "attribution": attribution,
    }, tile_origin=tile_origin(tiles) if the_map else None)


def _cp_context(svc: Services, cp: ChargerRecord, scale: int) -> dict[str, Any]:
    links = pay_links(svc.settings.public_url, cp.id)
    view = charge_point_json(svc, cp)
    context = {"cp": view, "links": links, "price_words": describe(svc.tariffs.current(cp)),
               "availability": availability(view),
               "qr_svg": qr_markup(qr.svg(links.web, scale=scale),
                                   f"QR code: pay for charging at {cp.name}")}
    if svc.use_cases.checkout.slow_offered(cp):
        # The slow rate is a second link: the driver picks it by scanning this one.
        slow = pay_links(svc.settings.public_url, cp.id, rate=SLOW)
        context.update(slow_links=slow, slow_words=describe(svc.tariffs.rated(cp, SLOW)),
                       slow_qr_svg=qr_markup(qr.svg(slow.web, scale=scale),
                                             f"QR code: pay the slow rate at {cp.name}"))
    return context


async def charge_point_page(request: Request) -> Response:
    svc = services(request)
    cp = await svc.charge_points.get(request.path_params["cp_id"])
    if cp is None:
        return not_found(request, "charge point", "unknown charge point")
    dynamic = svc.tariffs.is_dynamic(cp)
    try:  # offered only where the charger has the Reservation profile and a connector is free
        reserve: dict[str, str] | None = {
            "words": await svc.use_cases.reservations.words(cp.id),
            "lnurl": lnurl_encode(f"{svc.settings.public_url}/reserve/{cp.id}")}
    except Refused:
        reserve = None
    return render(request, "charge_point.html", {
        **_cp_context(svc, cp, scale=6), "reserve": reserve,
        "schedule": svc.tariffs.schedule(cp) if dynamic else [],
        "feed_status": svc.tariffs.status() if dynamic else None,
        "demo_pay": svc.demo and isinstance(svc.wallet, DevWallet)})


async def sticker(request: Request) -> Response:
    svc = services(request)
    cp = await svc.charge_points.get(request.path_params["cp_id"])
    if cp is None:
        return not_found(request, "charge point", "unknown charge point")
    return render(request, "sticker.html", _cp_context(svc, cp, scale=10))


async def qr_svg(request: Request) -> Response:
    svc = services(request)
    cp = await svc.charge_points.get(request.path_params["cp_id"])
    if cp is None:
        return not_found(request, "charge point", "unknown charge point")
    return Response(qr.svg(pay_links(svc.settings.public_url, cp.id).web),
                    media_type="image/svg+xml")


routes = [
    Route("/", index),
    Route("/cp/{cp_id}", charge_point_page),
    Route("/cp/{cp_id}/sticker", sticker),
    Route("/cp/{cp_id}/qr.svg", qr_svg),
    Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
]
