"""Paying a lightning address (LUD-16 → LUD-06 payRequest → callback → check → pay).

The invoice a service hands back is checked before anything is paid: its amount must be the
amount asked for and its description hash the SHA-256 of the payRequest's metadata.
`invoice_for_address` stops before paying, for callers that must record a payment first.
Every fetch goes through `strom.outbound` (fenced targets, total deadline, size cap).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

from strom.lightning.shared import decode_invoice
from strom.lightning.wallet import PaymentResult, Wallet, WalletError
from strom.outbound import Outbound, OutboundError, OutboundRefused

_USER = re.compile(r"^[a-z0-9\-_.+]+$")
_HOST = re.compile(r"^[a-z0-9.\-]+(:\d{1,5})?$|^\[[0-9a-f:]+\](:\d{1,5})?$")
_PLAIN_HTTP_HOSTS = {"localhost", "127.0.0.1", "::1"}
# LNURL answers are a few hundred bytes; 64 KiB leaves room for a large image in metadata.
MAX_ANSWER_BYTES = 64 * 1024


class LightningAddressError(WalletError):
    """The address cannot be paid: malformed, unreachable, refused, or a bad invoice."""


class LightningAddressRefused(LightningAddressError):
    """strom will never fetch this address: malformed, fenced, or strom's own (no retry)."""


def address_url(address: str) -> str:
    """The LUD-16 well-known URL of `user@domain` (http only for onion and loopback)."""
    user, sep, domain = address.strip().lower().partition("@")
    if not sep or not domain:
        raise LightningAddressRefused(f"{address!r} is not a lightning address (user@domain)")
    user = user or "_"  # LUD-16: "@domain" is the domain's default identifier
    if not _USER.match(user) or not _HOST.match(domain):
        raise LightningAddressRefused(f"{address!r} is not a lightning address (user@domain)")
    return f"{_scheme(domain)}://{domain}/.well-known/lnurlp/{user}"


def _scheme(netloc: str) -> str:
    host = urlsplit(f"//{netloc}").hostname or ""
    return "http" if host in _PLAIN_HTTP_HOSTS or host.endswith(".onion") else "https"


async def _get_json(outbound: Outbound, url: str, params: dict[str, str],
                    address: str, what: str) -> dict[str, Any]:
    try:
        # Merged, not replaced: a callback may carry query parameters of its own (LUD-06).
        response = await outbound.get(url, params=params, max_bytes=MAX_ANSWER_BYTES)
    except OutboundRefused as exc:
        raise LightningAddressRefused(f"{address}: will not fetch {what}: {exc}") from None
    except OutboundError as exc:
        raise LightningAddressError(f"{address}: cannot reach {what}: {exc}") from None
    data = _loads(response.body)
    if not isinstance(data, dict):
        raise LightningAddressError(f"{address}: {what} answered HTTP {response.status} "
                                    "without LNURL JSON")
    if str(data.get("status", "")).upper() == "ERROR":
        reason = str(data.get("reason") or "no reason given")[:200]
        raise LightningAddressError(f"{address}: {what} refused: {reason}")
    if response.status != 200:
        raise LightningAddressError(f"{address}: {what} answered HTTP {response.status}")
    return data


def _check_callback(callback: object, address: str) -> str:
    if not isinstance(callback, str):
        raise LightningAddressError(f"{address}: payRequest has no callback")
    parts = urlsplit(callback)
    if not parts.hostname or parts.scheme not in {"https", _scheme(parts.netloc)}:
        raise LightningAddressError(f"{address}: callback must be https, got {callback[:80]!r}")
    return callback


async def invoice_for_address(address: str, amount_msat: int, comment: str | None = None, *,
                              outbound: Outbound) -> str:
    """Ask `address` for an invoice of `amount_msat` and check it; returns the BOLT11.

    Both fetches together get one deadline (`[outbound] timeout_seconds`)."""
    url = address_url(address)
    if outbound.is_own(url):
        raise LightningAddressRefused(f"{address} is a lightning address of strom itself")
    try:
        async with asyncio.timeout(outbound.settings.timeout_seconds):
            return await _invoice(outbound, url, address, amount_msat, comment)
    except TimeoutError:
        raise LightningAddressError(f"{address}: no invoice within "
                                    f"{outbound.settings.timeout_seconds:g} s") from None


async def _invoice(outbound: Outbound, url: str, address: str, amount_msat: int,
                   comment: str | None) -> str:
    offer = await _get_json(outbound, url, {}, address, "the address")
    if offer.get("tag") != "payRequest":
        raise LightningAddressError(f"{address}: not a payRequest (tag {offer.get('tag')!r})")
    callback = _check_callback(offer.get("callback"), address)
    try:
        low, high = int(offer["minSendable"]), int(offer["maxSendable"])
    except (KeyError, TypeError, ValueError):
        raise LightningAddressError(f"{address}: payRequest lacks its amount range") from None
    if not low <= amount_msat <= high:
        raise LightningAddressError(
            f"{address} accepts {low / 1000:g} to {high / 1000:g} sat, "
            f"not {amount_msat / 1000:g} sat")
    metadata = offer.get("metadata")
    if not isinstance(metadata, str) or not isinstance(_loads(metadata), list):
        raise LightningAddressError(f"{address}: payRequest metadata is not a JSON list")
    params = {"amount": str(amount_msat)}
    try:
        allowed = int(offer.get("commentAllowed") or 0)
    except (TypeError, ValueError):
        allowed = 0
    if comment and allowed > 0:
        params["comment"] = comment[:allowed]  # the service would refuse a longer one
    answer = await _get_json(outbound, callback, params, address, "the callback")
    invoice = answer.get("pr")
    if not isinstance(invoice, str):
        raise LightningAddressError(f"{address}: callback returned no invoice")
    try:
        decoded = decode_invoice(invoice)
    except WalletError as exc:
        raise LightningAddressError(f"{address}: {exc}") from None
    if int(decoded.amount_msat or 0) != amount_msat:
        raise LightningAddressError(f"{address}: invoice is for {int(decoded.amount_msat or 0)} "
                                    f"msat, not the {amount_msat} msat asked for")
    expected = hashlib.sha256(metadata.encode("utf-8")).hexdigest()
    if decoded.description_hash != expected:
        raise LightningAddressError(f"{address}: invoice description hash does not match the "
                                    "payRequest metadata")
    return invoice


async def pay_lightning_address(wallet: Wallet, address: str, amount_msat: int,
                                comment: str | None = None, *,
                                max_fee_msat: int | None = None,
                                outbound: Outbound) -> PaymentResult:
    """Pay `amount_msat` to a lightning address through `wallet` (once per invoice)."""
    invoice = await invoice_for_address(address, amount_msat, comment, outbound=outbound)
    return await wallet.pay(invoice, max_fee_msat=max_fee_msat)


def _loads(text: str | bytes) -> object:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
