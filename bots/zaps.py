"""Zap receipts (NIP-57): once a zap's invoice is paid, the charger signs and sends the 9735.

Receipts are sent at most once (the store keeps the receipt id) and also after a restart for
zaps paid while strom was down. The relays the zap request names get the receipt through
`bots.relay_delivery` (one short connection each), never through the shared client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from nostr_sdk import Event, Keys

from strom.nostr.zap import parse_zap_request, zap_receipt
from strom.store.zaps import StoredZap, ZapRepository
from strom.timeutil import utcnow

log = logging.getLogger(__name__)


class ZapReceipts:
    def __init__(self, zaps: ZapRepository, keys_for: Callable[[str], Keys | None],
                 publish: Callable[..., Awaitable[bool]],
                 to_request_relays: Callable[[Event, list[str]], None]) -> None:
        self._zaps = zaps
        self._keys_for = keys_for
        self._publish = publish
        self._to_request_relays = to_request_relays

    async def on_paid(self, payment_hash: str, preimage: str | None) -> None:
        zap = await self._zaps.get(payment_hash)
        if zap is not None and zap.receipt_id is None:
            await self._send(zap, preimage)

    async def catch_up(self) -> None:
        """Receipts for zaps paid while the bots were not running."""
        for zap in await self._zaps.paid_without_receipt():
            await self._send(zap, None)

    async def _send(self, zap: StoredZap, preimage: str | None) -> None:
        keys = self._keys_for(zap.cp_id)
        if keys is None:
            log.warning("zap %s: no key for %s, receipt not sent", zap.payment_hash, zap.cp_id)
            return
        request = parse_zap_request(zap.request_json, keys.public_key().to_hex(),
                                    _amount_of(zap.request_json))
        receipt = zap_receipt(keys, request, zap.bolt11, preimage, utcnow())
        self._to_request_relays(receipt, list(request.relays))
        if await self._publish(receipt):
            await self._zaps.set_receipt(zap.payment_hash, receipt.id().to_hex())
            log.info("zap %s: receipt %s sent", zap.payment_hash, receipt.id().to_hex())


def _amount_of(request_json: str) -> int:
    """The request's own amount tag (checked when the invoice was made), else 0 = unchecked."""
    tags = json.loads(request_json).get("tags", [])
    return next((int(t[1]) for t in tags if t[:1] == ["amount"] and len(t) > 1), 0)
