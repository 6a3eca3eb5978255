"""LUD-03 withdraw: `/lnurlw/{token}` stops the session, then offers exactly what is refundable.

Only the payer holds the session token, so only the payer can stop the session or take its
money. Each withdrawRequest carries a fresh k1; the callback pays at most once per k1. The
routes translate to `strom/sessions/withdrawals.py`, which decides.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from strom.sessions.payer_stop import SessionToken
from strom.sessions.refusals import Refused
from strom.web.auth import services
from strom.web.responses import JSONResponse, lnurl_refusal, lnurl_response


async def withdraw_request_for(request: Request, token: SessionToken) -> JSONResponse:
    """Stop the session if it still runs, then answer a withdrawRequest (or why not)."""
    try:
        offer = await services(request).use_cases.withdrawals.offer(token)
    except Refused as exc:
        return lnurl_refusal(exc)
    session = offer.session
    return lnurl_response({
        "tag": "withdrawRequest",
        "callback": f"{services(request).settings.public_url}/lnurlw/{session.token}/callback",
        "k1": offer.k1,
        "defaultDescription": f"strom refund: charging session {session.id} at {session.cp_id}",
        "minWithdrawable": session.refundable_msat,
        "maxWithdrawable": session.refundable_msat,
    })


async def withdraw_request(request: Request) -> JSONResponse:
    return await withdraw_request_for(request, SessionToken(request.path_params["token"]))


async def withdraw_callback(request: Request) -> JSONResponse:
    try:
        await services(request).use_cases.withdrawals.claim(
            SessionToken(request.path_params["token"]), request.query_params.get("k1") or "",
            request.query_params.get("pr") or "")
    except Refused as exc:
        return lnurl_refusal(exc)
    return lnurl_response({"status": "OK"})


routes = [
    Route("/lnurlw/{token}", withdraw_request),
    Route("/lnurlw/{token}/callback", withdraw_callback),
]
