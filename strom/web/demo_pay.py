"""`POST /cp/{id}/demo-pay` and `POST /demo-withdraw/{token}`: pay for charging and
take the refund with the embedded dev wallet, from the pages.

Demo mode's shortcut for newcomers without a Lightning wallet: the same session as an LNURL
payment (same checks, same invoice), settled by the dev wallet at once, then the session page;
and the refund leg, which stops the session and withdraws exactly like an LNURL-withdraw (a
fresh k1, `RefundService.withdraw`) with an invoice from the demo driver's wallet. Exist only in demo mode (`strom run --demo`) with the dev wallet (not real money), and answers
on loopback only. Loopback alone is no credential (a proxy on the same host makes every
request loopback), and a page button cannot carry the admin token: outside demo mode the
routes answer 404 and pay nothing.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from strom.lightning.dev import DevWallet
from strom.lightning.wallet import PaymentStatus
from strom.lnurl import pay as lud06
from strom.lnurl.errors import LnurlError
from strom.sessions.refunds import RefundError
from strom.web.auth import require_loopback, services
from strom.web.lnurl_pay import ensure_free, pay_metadata, resolve_target
from strom.web.lnurl_withdraw import offer_withdraw, withdrawing_session

DEFAULT_SAT = 2_000


def _demo_wallet(request: Request) -> DevWallet:
    svc = services(request)
    if not (svc.demo and isinstance(svc.wallet, DevWallet)):
        raise HTTPException(404, "demo payments exist in demo mode with the dev wallet only")
    require_loopback(request)
    return svc.wallet


async def demo_pay(request: Request) -> Response:
    svc = services(request)
    wallet = _demo_wallet(request)
    form = await request.form()
    target = request.path_params["cp_id"]
    try:
        cp, connector_id = await resolve_target(svc, target)
        tariff = svc.tariffs.current(cp)
        amount = lud06.parse_amount(str(int(str(form.get("sat") or DEFAULT_SAT)) * 1000),
                                    tariff.min_sendable_msat, tariff.max_prepay_msat)
        await ensure_free(svc, cp, connector_id)
        meta = pay_metadata(svc, cp, connector_id, target, tariff)
        pending = await svc.sessions.create_pending(
            cp, connector_id, tariff, amount, description_hash=lud06.description_hash(meta),
            comment="paid with the demo button")
    except (LnurlError, ValueError) as exc:
        raise HTTPException(409, f"cannot pay now: {exc}") from None
    await wallet.settle(pending.bolt11)
    return RedirectResponse(f"/s/{pending.session.token}", status_code=303)


async def demo_withdraw(request: Request) -> Response:
    svc = services(request)
    wallet = _demo_wallet(request)
    try:
        session, k1 = await offer_withdraw(
            svc, await withdrawing_session(svc, request.path_params["token"]))
        invoice = wallet.payer_invoice(session.refundable_msat, "strom demo refund")
        outcome = await svc.refunds.withdraw(session, k1, invoice)
    except (LnurlError, RefundError) as exc:
        raise HTTPException(409, f"cannot refund now: {exc}") from None
    if outcome.status == PaymentStatus.FAILED:
        raise HTTPException(409, "the refund payment failed; try again")
    return RedirectResponse(f"/s/{session.token}", status_code=303)


routes = [Route("/cp/{cp_id}/demo-pay", demo_pay, methods=["POST"]),
          # {token}: the withdraw link's token, looked up as /lnurlw/{token} looks it up
          Route("/demo-withdraw/{token}", demo_withdraw, methods=["POST"])]
