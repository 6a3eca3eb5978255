"""LUD-06/16 pay: `/lnurlp/{target}`, `/.well-known/lnurlp/{target}` and the callback.

A target is a charge point id (any free connector) or `{cp_id}-{connector}`; `?rate=slow`
asks for the charger's slow rate (issue 21). The routes
translate HTTP to checkout (`strom/sessions/checkout.py`), which decides; a refusal becomes a
LUD-06 error with its reason.
"""

from __future__ import annotations

from lnurl import aes_encrypt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strom.container import Services
from strom.lnurl import pay as lud06
from strom.lnurl.errors import LnurlError
from strom.sessions.checkout import Order
from strom.sessions.lifecycle import PendingPayment
from strom.sessions.payer_stop import SessionToken
from strom.sessions.refusals import Refused
from strom.tariffs.slow import SLOW
from strom.web.auth import services
from strom.web.lnurl_withdraw import withdraw_request_for
from strom.web.rate_limits import invoice_rate_limited
from strom.web.responses import JSONResponse, lnurl_refusal, lnurl_response


async def pay_request(request: Request) -> JSONResponse:
    svc = services(request)
    target = request.path_params["target"]
    try:
        if token := request.query_params.get("s"):
            # The charger's own QR, opened with the payer's session token: stop and refund.
            cp = (await svc.use_cases.checkout.target(target)).cp
            return await withdraw_request_for(request, SessionToken(token, cp_id=cp.id))
        rate = request.query_params.get("rate")
        offer = await svc.use_cases.checkout.offer(target, rate)
    except Refused as exc:
        return lnurl_refusal(exc)
    # The rate rides along to the callback (the quote locks it; the rate names it again when
    # the quote has ended and the price is quoted afresh).
    slow = f"&rate={SLOW}" if offer.tariff.max_power_w is not None else ""
    answer = lud06.pay_request(
        callback=f"{svc.settings.public_url}/lnurlp/{target}/callback?q={offer.quote}{slow}",
        min_sendable=offer.min_msat, max_sendable=offer.max_msat, metadata_json=offer.metadata,
        comment_allowed=svc.settings.lnurl.comment_allowed)
    if offer.nostr_pubkey:  # NIP-57: zaps start sessions too
        answer.update(allowsNostr=True, nostrPubkey=offer.nostr_pubkey)
    return lnurl_response(answer)


@invoice_rate_limited
async def pay_callback(request: Request) -> Response:
    svc, query = services(request), request.query_params
    try:
        refuse_strom_itself(svc, request)
        invoiced = await svc.use_cases.checkout.pay(Order(
            target=request.path_params["target"], amount_msat=lud06.parse_msat(query.get("amount")),
            quote=query.get("q"),
            comment=lud06.parse_comment(query.get("comment"), svc.settings.lnurl.comment_allowed),
            zap_request=query.get("nostr"), rate=query.get("rate")))
    except (LnurlError, Refused) as exc:
        return lnurl_refusal(exc)
    action = ZAP_SUCCESS if invoiced.for_zap else success_action(svc, invoiced.pending)
    return lnurl_response({"pr": invoiced.pending.bolt11, "routes": [], "successAction": action})


def refuse_strom_itself(svc: Services, request: Request) -> None:
    """An invoice request from strom's own outbound fetch is refused: strom's refund reached
    strom under some other name, and paying itself would only open a session (or a
    reservation) with the payer's refund (issue 26)."""
    if svc.outbound.is_marked(request.headers):
        raise LnurlError("this is strom itself; strom does not pay its own invoices")


# A zap's answer goes to whoever presents the (public) zap request: it carries no session link.
# The zap sender gets that by encrypted DM (bots/notify.py), as the payer of record.
ZAP_SUCCESS = {"tag": "message",
               "message": "Zap received. Your charging session link comes by nostr DM."}


def success_action(svc: Services, pending: PendingPayment) -> dict[str, str]:
    """LUD-09 `url` to the session page, or LUD-10 `aes` with the link only the payer can read.

    Only for the invoice request that created the session: the party that asked for it is
    the payer. Top-ups and zaps never get it.
    """
    session_url = f"{svc.settings.public_url}/s/{pending.session.token}"
    if svc.settings.lnurl.success_action == "aes" and pending.preimage:
        ciphertext, iv = aes_encrypt(bytes.fromhex(pending.preimage), session_url)
        return {"tag": "aes", "description": "Your charging session link (stop and refund)",
                "ciphertext": ciphertext, "iv": iv}
    return {"tag": "url", "url": session_url,
            "description": "Your charging session: live status, stop and refund"}


routes = [
    Route("/lnurlp/{target}", pay_request),
    Route("/.well-known/lnurlp/{target}", pay_request),
    Route("/lnurlp/{target}/callback", pay_callback),
]
