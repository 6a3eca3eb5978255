"""`/s/{token}`: the session page (HTML, or the session JSON with `Accept: application/json`),
and the top-up payRequest `/topup/{topup_token}` (LUD-06).

Separate rights, separate 128-bit tokens (docs/architecture.md, "Capabilities"): the payer's
token views, stops and refunds; the view token (`view_url`) only reads the same page without
the stop & refund link; the top-up token only pays. `/s/{token}/topup` still answers for the
payer's token, for top-up links printed before the tokens were split; strom no longer emits it.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strom import qr
from strom.container import Services
from strom.lightning.dev import DevWallet
from strom.lnurl import pay as lud06
from strom.lnurl.errors import LnurlError
from strom.sessions.model import Session
from strom.sessions.refusals import Refused
from strom.sessions.topup import TopUpToken, UnknownTopUp
from strom.views import session_json
from strom.web.auth import services
from strom.web.page_response import not_found, qr_markup, render
from strom.web.page_views import session_view
from strom.web.rate_limits import invoice_rate_limited
from strom.web.responses import JSONResponse, lnurl_refusal, lnurl_response


async def viewed_session(svc: Services, token: str) -> tuple[Session, bool] | None:
    """The session `token` may look at, and whether it is the payer's (who may also stop and
    refund) rather than the read-only view token."""
    if (session := await svc.sessions.by_token(token)) is not None:
        return session, True
    if (session := await svc.sessions.by_view_token(token)) is not None:
        return session, False
    return None


def _topup_token(request: Request) -> TopUpToken:
    """`/topup/{token}` takes only the top-up token, the legacy `/s/{token}/topup` only the
    payer's."""
    return TopUpToken(request.path_params["token"], legacy=request.url.path.startswith("/s/"))


def wants_json(request: Request) -> bool:
    """Whether the client asked for the session JSON rather than the page."""
    return "application/json" in request.headers.get("accept", "")


async def session_page(request: Request) -> Response:
    svc = services(request)
    token = request.path_params["token"]
    found = await viewed_session(svc, token)
    if found is None:
        return not_found(request, "charging session", "no such session")
    session, payer = found
    data = session_json(svc, session, payer=payer)
    if wants_json(request):
        return JSONResponse(data, headers={"Cache-Control": "no-store"})
    topup = data["topup_lnurl"]
    cp = await svc.charge_points.get(session.cp_id)
    return render(request, "session.html", {
        "s": data, "v": session_view(data), "token": token, "topup": topup, "payer": payer,
        "cp_name": cp.name if cp else session.cp_id,
        "demo_pay": svc.demo and isinstance(svc.wallet, DevWallet),  # the refund leg's button
        "withdraw_qr": qr_markup(qr.svg(f"lightning:{data['lnurlw']}"),
                                 "QR code: stop charging and get your refund") if payer else "",
        "topup_qr": qr_markup(qr.svg(f"lightning:{topup}"), "QR code: top up this session"),
    }, private=True)


async def topup_request(request: Request) -> Response:
    try:
        offer = await services(request).use_cases.topups.offer(_topup_token(request))
    except UnknownTopUp as exc:
        raise HTTPException(404, str(exc)) from None
    return lnurl_response(lud06.pay_request(
        callback=f"{services(request).settings.public_url}{request.url.path.rstrip('/')}/callback",
        min_sendable=offer.min_msat, max_sendable=offer.max_msat, metadata_json=offer.metadata,
        comment_allowed=0))


@invoice_rate_limited
async def topup_callback(request: Request) -> Response:
    """The top-up invoice; its answer carries no success action and no session link."""
    topups = services(request).use_cases.topups
    try:
        offer = await topups.offer(_topup_token(request))
    except UnknownTopUp as exc:  # as for the payRequest
        raise HTTPException(404, str(exc)) from None
    try:
        pending = await topups.pay(offer, lud06.parse_msat(request.query_params.get("amount")))
    except (LnurlError, Refused) as exc:
        return lnurl_refusal(exc)
    return lnurl_response({"pr": pending.bolt11, "routes": []})


routes = [
    Route("/s/{token}", session_page),
    Route("/s/{token}/topup", topup_request),
    Route("/s/{token}/topup/callback", topup_callback),
    Route("/topup/{token}", topup_request),
    Route("/topup/{token}/callback", topup_callback),
]
