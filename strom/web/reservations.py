"""Pay to reserve (issue 21): `/reserve/{target}` (LUD-06 payRequest for the reservation fee),
its callback, and `POST /s/{token}/cancel-reservation` (the payer's token only).

The routes translate HTTP to `strom/sessions/reservations.py`, which decides; a refusal is a
LUD-06 error with its reason (not offered, the charger lacks the Reservation profile, no free
connector), an unknown or someone else's token a 404.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from strom.lnurl import pay as lud06
from strom.lnurl.errors import LnurlError
from strom.sessions.payer_stop import SessionToken
from strom.sessions.refusals import Refused
from strom.views import session_json
from strom.web.auth import services
from strom.web.lnurl_pay import refuse_strom_itself, success_action
from strom.web.rate_limits import invoice_rate_limited
from strom.web.responses import JSONResponse, lnurl_refusal, lnurl_response


async def reserve_request(request: Request) -> JSONResponse:
    svc = services(request)
    target = request.path_params["target"]
    try:
        offer = await svc.use_cases.reservations.offer(target)
    except Refused as exc:
        return lnurl_refusal(exc)
    return lnurl_response(lud06.pay_request(
        callback=f"{svc.settings.public_url}/reserve/{target}/callback",
        min_sendable=offer.min_msat, max_sendable=offer.max_msat, metadata_json=offer.metadata,
        comment_allowed=svc.settings.lnurl.comment_allowed))


@invoice_rate_limited
async def reserve_callback(request: Request) -> Response:
    svc, query = services(request), request.query_params
    try:
        refuse_strom_itself(svc, request)
        invoiced = await svc.use_cases.reservations.pay(
            request.path_params["target"], lud06.parse_msat(query.get("amount")),
            comment=lud06.parse_comment(query.get("comment"), svc.settings.lnurl.comment_allowed))
    except (LnurlError, Refused) as exc:
        return lnurl_refusal(exc)
    return lnurl_response({"pr": invoiced.pending.bolt11, "routes": [],
                           "successAction": success_action(svc, invoiced.pending)})


async def cancel_reservation(request: Request) -> Response:
    svc = services(request)
    try:
        session = await svc.use_cases.reservations.cancel(
            SessionToken(request.path_params["token"]))
    except Refused as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    if "text/html" in request.headers.get("accept", ""):  # the session page's button
        return RedirectResponse(f"/s/{request.path_params['token']}", status_code=303)
    return JSONResponse(session_json(svc, session, payer=True),
                        headers={"Cache-Control": "no-store"})


routes = [
    Route("/reserve/{target}", reserve_request),
    Route("/reserve/{target}/callback", reserve_callback),
    Route("/s/{token}/cancel-reservation", cancel_reservation, methods=["POST"]),
]
