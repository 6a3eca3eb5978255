"""LUD-03 withdraw: `/lnurlw/{token}` stops the session, then offers exactly what is refundable.

Only the payer holds the session token, so only the payer can stop the session or take its
money. Each withdrawRequest carries a fresh k1; the callback pays at most once per k1.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from strom.container import Services
from strom.lightning.wallet import PaymentStatus
from strom.lnurl.errors import LnurlError
from strom.sessions.model import ACTIVE_STATES, Session, State
from strom.sessions.refunds import RefundError
from strom.web.auth import services
from strom.web.responses import JSONResponse, lnurl_response


async def withdrawing_session(svc: Services, token: str) -> Session | None:
    """The session a withdraw link's token stands for (the payer's capability to stop it and
    take its refund); the demo refund button asks here too."""
    return await svc.sessions.by_token(token)


async def offer_withdraw(svc: Services, session: Session | None) -> tuple[Session, str]:
    """Stop the session if it still runs, then a fresh k1 for exactly what is refundable;
    raises LnurlError saying why not. The demo refund button goes this way too."""
    if session is None:
        raise LnurlError("unknown session link")
    if session.state == State.PENDING_PAYMENT:
        raise LnurlError("this session is not paid yet")
    if session.state in (State.PAID, *ACTIVE_STATES):
        session = await svc.sessions.stop_and_wait(session.id, "stopped by the driver")
    if session.refundable_msat <= 0:
        if session.held_msat > 0:
            raise LnurlError(f"{session.held_msat // 1000} sat are held until the charger "
                             "confirms the stop; open this link again later")
        raise LnurlError("your refund was already paid" if session.refunded_msat
                         else "nothing to refund: the prepayment was used up")
    return session, await svc.refunds.new_withdraw_link(session)


async def withdraw_request_for(svc: Services, session: Session | None) -> JSONResponse:
    """Stop the session if it still runs, then answer a withdrawRequest (or why not)."""
    try:
        session, k1 = await offer_withdraw(svc, session)
    except LnurlError as exc:
        return lnurl_response(exc.to_json())
    return lnurl_response({
        "tag": "withdrawRequest",
        "callback": f"{svc.settings.public_url}/lnurlw/{session.token}/callback",
        "k1": k1,
        "defaultDescription": f"strom refund: charging session {session.id} at {session.cp_id}",
        "minWithdrawable": session.refundable_msat,
        "maxWithdrawable": session.refundable_msat,
    })


async def withdraw_request(request: Request) -> JSONResponse:
    svc = services(request)
    return await withdraw_request_for(
        svc, await withdrawing_session(svc, request.path_params["token"]))


async def withdraw_callback(request: Request) -> JSONResponse:
    svc = services(request)
    session = await withdrawing_session(svc, request.path_params["token"])
    k1, pr = request.query_params.get("k1"), request.query_params.get("pr")
    if session is None:
        return lnurl_response(LnurlError("unknown session link").to_json())
    if not k1 or not pr:
        return lnurl_response(LnurlError("k1 and pr are required").to_json())
    try:
        outcome = await svc.refunds.withdraw(session, k1, pr)
    except RefundError as exc:
        return lnurl_response(LnurlError(str(exc)).to_json())
    if outcome.status == PaymentStatus.FAILED:
        return lnurl_response(LnurlError(
            "the refund payment failed; open your stop & refund link to try again").to_json())
    return lnurl_response({"status": "OK"})


routes = [
    Route("/lnurlw/{token}", withdraw_request),
    Route("/lnurlw/{token}/callback", withdraw_callback),
]
