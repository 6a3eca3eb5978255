"""LUD-06/16 pay: `/lnurlp/{target}`, `/.well-known/lnurlp/{target}` and the callback.

A target is a charge point id (any free connector) or `{cp_id}-{connector}`. The payRequest is
answered only while a connector is free; the reason says why not.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from lnurl import aes_encrypt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strom.container import Services
from strom.lightning.wallet import WalletError
from strom.lnurl import pay as lud06
from strom.lnurl.errors import LnurlError
from strom.nostr.zap import ZAP_REQUEST, ZapRequest, check_fresh, parse_zap_request
from strom.sessions.lifecycle import PendingPayment, SessionError
from strom.sessions.model import Session, State
from strom.store.charge_points import ChargerRecord
from strom.tariffs.model import Tariff, describe
from strom.tariffs.pricing import QuotedPrice
from strom.web.auth import services
from strom.web.lnurl_withdraw import withdraw_request_for
from strom.web.rate_limits import invoice_rate_limited
from strom.web.responses import JSONResponse, lnurl_response

log = logging.getLogger(__name__)


async def resolve_target(svc: Services, target: str) -> tuple[ChargerRecord, int | None]:
    """`demo-1` → (demo-1, any connector); `demo-1-2` → (demo-1, connector 2)."""
    cp = await svc.charge_points.get(target)
    if cp is not None:
        return cp, None
    base, _, number = target.rpartition("-")
    if base and number.isdigit():
        cp = await svc.charge_points.get(base)
        if cp is not None and 1 <= int(number) <= cp.num_connectors:
            return cp, int(number)
    raise LnurlError(f"unknown charger {target[:64]!r}")


async def ensure_free(svc: Services, cp: ChargerRecord, connector_id: int | None) -> None:
    """Raise an LNURL error saying why this charger cannot be paid for right now."""
    choice = await svc.sessions.free_connector(cp, connector_id)
    if choice.in_use:
        raise LnurlError(choice.reason + ". If it is your session, stop it with the stop & "
                         "refund link on your session page (your wallet showed it after paying).")
    if choice.connector_id is None:
        raise LnurlError(choice.reason)


def address_host(svc: Services) -> str:
    return urlsplit(svc.settings.public_url).netloc


def pay_metadata(svc: Services, cp: ChargerRecord, connector_id: int | None, target: str,
                 tariff: Tariff) -> str:
    where = f"connector {connector_id}" if connector_id else "any free connector"
    text = f"Charge at {cp.name} ({where}): {describe(tariff)}"
    image = svc.settings.lnurl.image_path
    return lud06.metadata(text, identifier=f"{target}@{address_host(svc)}",
                          image=lud06.load_image(image) if image else None)


async def pay_request(request: Request) -> JSONResponse:
    svc = services(request)
    target = request.path_params["target"]
    try:
        cp, connector_id = await resolve_target(svc, target)
        if token := request.query_params.get("s"):
            # The charger's own QR, opened with the payer's session token: stop and refund.
            session = await svc.sessions.by_token(token)
            return await withdraw_request_for(svc, session if session and session.cp_id == cp.id
                                              else None)
        try:
            await ensure_free(svc, cp, connector_id)
        except LnurlError:
            # A driver who zapped may zap again to top up (nostr clients fetch this first);
            # the callback then accepts only that driver's zap.
            if not await _zapper_is_charging(svc, cp):
                raise
    except LnurlError as exc:
        return lnurl_response(exc.to_json())
    # The metadata states the price; the quote keeps it for the callback even if the market
    # moves in between, so the invoice's description hash matches what the wallet was shown.
    tariff, quote = svc.tariffs.quote(cp)
    answer = lud06.pay_request(
        callback=f"{svc.settings.public_url}/lnurlp/{target}/callback?q={quote}",
        min_sendable=tariff.min_sendable_msat, max_sendable=tariff.max_prepay_msat,
        metadata_json=pay_metadata(svc, cp, connector_id, target, tariff),
        comment_allowed=svc.settings.lnurl.comment_allowed)
    if pubkey := _nostr_pubkey(svc, cp):
        answer.update(allowsNostr=True, nostrPubkey=pubkey)  # NIP-57: zaps start sessions too
    return lnurl_response(answer)


def _nostr_pubkey(svc: Services, cp: ChargerRecord) -> str | None:
    """The charger's own key signs its zap receipts; none when its key is not loaded."""
    return svc.keyring.pubkey_hex(cp.id)


@invoice_rate_limited
async def pay_callback(request: Request) -> Response:
    svc = services(request)
    target = request.path_params["target"]
    try:
        if svc.outbound.is_marked(request.headers):
            # strom's own refund reached strom under some other name: paying itself would
            # only open a session with the payer's refund (issue 26).
            raise LnurlError("this is strom itself; strom does not pay its own invoices")
        cp, connector_id = await resolve_target(svc, target)
        price = svc.tariffs.quoted(cp, request.query_params.get("q"))
        tariff = price.tariff
        amount = lud06.parse_amount(request.query_params.get("amount"),
                                    tariff.min_sendable_msat, tariff.max_prepay_msat)
        comment = lud06.parse_comment(request.query_params.get("comment"),
                                      svc.settings.lnurl.comment_allowed)
        zap = _zap_request(svc, cp, request.query_params.get("nostr"), amount)
        running = await _running_session_of(svc, cp, zap.sender) if zap else None
        if running is None:
            await ensure_free(svc, cp, connector_id)
            _still_as_shown(svc, cp, connector_id, target, price)
        if zap and not await svc.zaps.claim(zap.id, ZAP_REQUEST):
            raise LnurlError("this zap request was already used; zap again (your client signs "
                             "a new request for every zap)")
        try:
            pending = await _invoice(svc, cp, connector_id, target, price, amount, comment,
                                     zap, running)
        except LnurlError:
            if zap:  # no invoice was made: the request may be tried again
                await svc.zaps.release(zap.id)
            raise
    except LnurlError as exc:
        return lnurl_response(exc.to_json())
    action = ZAP_SUCCESS if zap else success_action(svc, pending)
    return lnurl_response({"pr": pending.bolt11, "routes": [], "successAction": action})


async def _invoice(svc: Services, cp: ChargerRecord, connector_id: int | None, target: str,
                   price: QuotedPrice, amount: int, comment: str | None,
                   zap: ZapRequest | None, running: Session | None) -> PendingPayment:
    """A new session's invoice, or for a zap from a driver who is charging here a top-up of
    their running session (a gift to its budget: the answer carries no session link)."""
    tariff = price.tariff
    # A zap's invoice commits to the zap request (NIP-57), a plain payment to the metadata.
    described = zap.raw if zap else pay_metadata(svc, cp, connector_id, target, tariff)
    try:
        if running is not None:
            pending = await svc.sessions.create_topup(
                running, amount, description_hash=lud06.description_hash(described))
        else:
            pending = await svc.sessions.create_pending(
                cp, connector_id, tariff, amount,
                description_hash=lud06.description_hash(described), comment=comment,
                payer_pubkey=zap.sender if zap else None, expiry=price.seconds_left)
    except SessionError as exc:
        raise LnurlError(str(exc)) from None
    except WalletError:
        raise LnurlError("payments temporarily unavailable, try again in a minute") from None
    if zap:
        await svc.zaps.add(payment_hash=pending.payment_hash, session_id=pending.session.id,
                           cp_id=cp.id, sender=zap.sender, request_json=zap.raw,
                           bolt11=pending.bolt11)
    return pending


def _still_as_shown(svc: Services, cp: ChargerRecord, connector_id: int | None, target: str,
                    price: QuotedPrice) -> None:
    """Refuse when the wallet's quote ended and the price text it showed no longer holds.

    The wallet checks the invoice's description hash against the metadata it showed; an
    invoice at a new price would fail that check with a cryptic error, or (for a zap) be paid
    at a price the driver never saw. Scanning again shows the current price.
    """
    if price.shown is not None and pay_metadata(svc, cp, connector_id, target, price.shown) \
            != pay_metadata(svc, cp, connector_id, target, price.tariff):
        raise LnurlError(f"The price changed since your wallet loaded it; it is now "
                         f"{describe(price.tariff)} Scan the QR code again to pay at this price.")


async def _running_session_of(svc: Services, cp: ChargerRecord, payer: str) -> Session | None:
    mine = await svc.sessions.list(cp_id=cp.id, payer_pubkey=payer, limit=5)
    return next((s for s in mine if s.state in (State.PAID, State.STARTING, State.CHARGING)),
                None)


async def _zapper_is_charging(svc: Services, cp: ChargerRecord) -> bool:
    if _nostr_pubkey(svc, cp) is None:
        return False
    running = await svc.sessions.list(cp_id=cp.id, state=State.CHARGING, limit=16)
    return any(s.payer_pubkey for s in running)


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


def _zap_request(svc: Services, cp: ChargerRecord, raw: str | None,
                 amount: int) -> ZapRequest | None:
    if raw is None:
        return None
    pubkey = _nostr_pubkey(svc, cp)
    if pubkey is None:
        raise LnurlError("this charger does not accept zaps")
    try:
        request = parse_zap_request(raw, pubkey, amount)
        check_fresh(request, time.time())
        return request
    except LnurlError as exc:
        log.warning("rejected zap request for %s: %s", cp.id, exc)
        raise


routes = [
    Route("/lnurlp/{target}", pay_request),
    Route("/.well-known/lnurlp/{target}", pay_request),
    Route("/lnurlp/{target}/callback", pay_callback),
]
