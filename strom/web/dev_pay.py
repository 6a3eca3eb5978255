"""`POST /api/v1/dev/pay` (dev wallet only, admin token, loopback only): play the payer.

`{"bolt11": "lnbcrt…"}` — an invoice this strom issued is settled (as if a wallet paid it, so
`InvoicePaid` flows as in real life); any other invoice is recorded as an outgoing payment.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from strom.lightning.dev import DevWallet
from strom.lightning.shared import decode_invoice
from strom.lightning.wallet import WalletError
from strom.web.auth import require_admin, require_loopback, services
from strom.web.responses import JSONResponse

MAX_BODY = 8192


def _bad(reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=400)


async def dev_pay(request: Request) -> JSONResponse:
    wallet = services(request).wallet
    if not isinstance(wallet, DevWallet):
        raise HTTPException(404, "not found: /api/v1/dev/pay exists with the dev wallet only")
    require_loopback(request)
    require_admin(request)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return _bad("body too large")
    try:
        body = json.loads(raw)
    except ValueError:
        return _bad('body must be JSON like {"bolt11": "lnbcrt…"}')
    invoice = body.get("bolt11") if isinstance(body, dict) else None
    if not isinstance(invoice, str) or not invoice.strip():
        return _bad('give the invoice as {"bolt11": "lnbcrt…"}')
    try:
        decoded = decode_invoice(invoice)
        if await wallet.owns(decoded.payment_hash):
            status = await wallet.settle(invoice)
            return JSONResponse({"payment_hash": status.payment_hash, "status": "succeeded",
                                 "amount_msat": status.amount_msat, "settled": True})
        result = await wallet.pay(invoice)
    except WalletError as exc:
        return _bad(str(exc))
    answer: dict[str, object] = {"payment_hash": result.payment_hash,
                                 "status": result.status.value,
                                 "amount_msat": result.amount_msat, "settled": False}
    if result.failure_reason:
        answer["failure_reason"] = result.failure_reason
    return JSONResponse(answer)


routes = [Route("/api/v1/dev/pay", dev_pay, methods=["POST"])]
