"""Zaps paid to a charger's lightning address served elsewhere (`external_lnurl`).

The provider publishes the kind 9735 receipts; a receipt starts a session only when it is
signed by the provider's `nostrPubkey`, its bolt11 commits to the embedded zap request
(description hash) and its amount equals the request's. Each receipt counts once, also across
restarts (the payment hash is recorded like any session invoice).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import bolt11
import httpx
from nostr_sdk import Event

from strom.container import Services
from strom.lightning.address import address_url
from strom.nostr.zap import receipt_bolt11, receipt_request
from strom.sessions.checkout import PaidElsewhere

log = logging.getLogger(__name__)


async def provider_pubkey(external_lnurl: str) -> str | None:
    """The `nostrPubkey` the provider signs receipts with (from its payRequest)."""
    url = address_url(external_lnurl) if "@" in external_lnurl else external_lnurl
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            answer: dict[str, Any] = (await http.get(url)).json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("external zaps: cannot read %s: %s", external_lnurl, type(exc).__name__)
        return None
    pubkey = answer.get("nostrPubkey") if answer.get("allowsNostr") else None
    if not isinstance(pubkey, str) or len(pubkey) != 64:
        log.warning("external zaps: %s does not support zaps (no nostrPubkey)", external_lnurl)
        return None
    return pubkey.lower()


class ExternalZaps:
    """Turns verified receipts to charge points in external mode into paid sessions."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self.providers: dict[str, str] = {}  # cp_id -> provider pubkey

    async def load(self, cp_ids: list[str]) -> None:
        for cp_id in cp_ids:
            external = self._svc.settings.charge_points.get(cp_id)
            if external and external.external_lnurl:
                if pubkey := await provider_pubkey(external.external_lnurl):
                    self.providers[cp_id] = pubkey

    async def on_receipt(self, cp_id: str, event: Event) -> None:
        provider = self.providers.get(cp_id)
        reason = self._reject_reason(event, provider)
        if reason:
            log.warning("external zaps: rejected receipt %s for %s: %s",
                        event.id().to_hex()[:16], cp_id, reason)
            return
        request = receipt_request(event)
        invoice = bolt11.decode(receipt_bolt11(event) or "")
        assert request is not None
        session = await self._svc.use_cases.checkout.paid_elsewhere(PaidElsewhere(
            cp_id, bolt11=receipt_bolt11(event) or "", payment_hash=invoice.payment_hash,
            amount_msat=int(invoice.amount_msat or 0), payer_pubkey=request.sender))
        if session is not None:
            log.info("external zaps: %d msat from %s start session %s at %s",
                     session.paid_msat, request.sender[:16], session.id, cp_id)

    @staticmethod
    def _reject_reason(event: Event, provider: str | None) -> str | None:
        if provider is None:
            return "no provider key known"
        if not event.verify():
            return "bad signature"
        if event.author().to_hex() != provider:
            return "not signed by the provider's nostrPubkey"
        request = receipt_request(event)
        if request is None:
            return "no valid zap request in its description"
        try:
            invoice = bolt11.decode(receipt_bolt11(event) or "")
        except Exception:
            return "no valid bolt11"
        if invoice.description_hash != hashlib.sha256(request.raw.encode()).hexdigest():
            return "bolt11 does not commit to the zap request"
        if not invoice.amount_msat or request.amount_msat != int(invoice.amount_msat):
            return "amount does not match the zap request"
        return None
