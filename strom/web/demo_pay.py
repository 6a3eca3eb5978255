"""`POST /cp/{id}/demo-pay` and `POST /demo-withdraw/{token}`: pay for charging and
take the refund with the embedded dev wallet, from the pages.

Demo mode's shortcut for newcomers without a Lightning wallet: the same checkout as an LNURL
payment (`strom/sessions/checkout.py`: same checks, same invoice), settled by the dev wallet at
once, then the session page; and the refund leg, the same withdrawal as LNURL-withdraw
(`strom/sessions/withdrawals.py`: stop, a fresh k1, the claim) with an invoice from the demo
driver's wallet. Exist only in demo mode (`strom run --demo`) with the dev wallet (not real
money), and answers on loopback only. Loopback alone is no credential (a proxy on the same
host makes every request loopback), and a page button cannot carry the admin token: outside
demo mode the routes answer 404 and pay nothing.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from strom.lightning.dev import DevWallet
from strom.sessions.checkout import Order
from strom.sessions.payer_stop import SessionToken
from strom.sessions.refusals import Refused
from strom.sessions.withdrawals import RefundFailed
from strom.web.auth import require_loopback, services

DEFAULT_SAT = 2_000


def _demo_wallet(request: Request) -> DevWallet:
    svc = services(request)
    if not (svc.demo and isinstance(svc.wallet, DevWallet)):
        raise HTTPException(404, "demo payments exist in demo mode with the dev wallet only")
    require_loopback(request)
    return svc.wallet


async def demo_pay(request: Request) -> Response:
    wallet = _demo_wallet(request)
    form = await request.form()
    try:
        invoiced = await services(request).use_cases.checkout.pay(Order(
            target=request.path_params["cp_id"],
            amount_msat=int(str(form.get("sat") or DEFAULT_SAT)) * 1000,
            comment="paid with the demo button"))
    except (Refused, ValueError) as exc:
        raise HTTPException(409, f"cannot pay now: {exc}") from None
    await wallet.settle(invoiced.pending.bolt11)
    return RedirectResponse(f"/s/{invoiced.pending.session.token}", status_code=303)


async def demo_withdraw(request: Request) -> Response:
    wallet = _demo_wallet(request)
    withdrawals = services(request).use_cases.withdrawals
    # {token}: the withdraw link's token, looked up as /lnurlw/{token} looks it up
    token = SessionToken(request.path_params["token"])
    try:
        offer = await withdrawals.offer(token)
        invoice = wallet.payer_invoice(offer.session.refundable_msat, "strom demo refund")
        await withdrawals.claim(token, offer.k1, invoice)
    except RefundFailed:
        raise HTTPException(409, "the refund payment failed; try again") from None
    except Refused as exc:
        raise HTTPException(409, f"cannot refund now: {exc}") from None
    return RedirectResponse(f"/s/{offer.session.token}", status_code=303)


routes = [Route("/cp/{cp_id}/demo-pay", demo_pay, methods=["POST"]),
          Route("/demo-withdraw/{token}", demo_withdraw, methods=["POST"])]
