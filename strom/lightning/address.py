"""Paying a lightning address (LUD-16 → LUD-06 payRequest → callback → check → pay).

The invoice a service hands back is checked before anything is paid: its amount must be the
amount asked for and its description hash the SHA-256 of the payRequest's metadata.
`invoice_for_address` stops before paying, for callers that must record a payment first.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from strom.lightning.shared import decode_invoice
from strom.lightning.wallet import PaymentResult, Wallet, WalletError

_USER = re.compile(r"^[a-z0-9\-_.+]+$")
_HOST = re.compile(r"^[a-z0-9.\-]+(:\d{1,5})?$|^\[[0-9a-f:]+\](:\d{1,5})?$")
_PLAIN_HTTP_HOSTS = {"localhost", "127.0.0.1", "::1"}
TIMEOUT = 10.0


class LightningAddressError(WalletError):
    """The address cannot be paid: malformed, unreachable, refused, or a bad invoice."""


def address_url(address: str) -> str:
    """The LUD-16 well-known URL of `user@domain` (http only for onion and loopback)."""
    user, sep, domain = address.strip().lower().partition("@")
    if not sep or not domain:
        raise LightningAddressError(f"{address!r} is not a lightning address (user@domain)")
    user = user or "_"  # LUD-16: "@domain" is the domain's default identifier
    if not _USER.match(user) or not _HOST.match(domain):
        raise LightningAddressError(f"{address!r} is not a lightning address (user@domain)")
    return f"{_scheme(domain)}://{domain}/.well-known/lnurlp/{user}"


def _scheme(netloc: str) -> str:
    host = urlsplit(f"//{netloc}").hostname or ""
    return "http" if host in _PLAIN_HTTP_HOSTS or host.endswith(".onion") else "https"


async def _get_json(client: httpx.AsyncClient, url: str, params: dict[str, str],
                    address: str, what: str) -> dict[str, Any]:
    try:
        # Merge, not replace: a callback may carry query parameters of its own (LUD-06).
        response = await client.get(httpx.URL(url).copy_merge_params(params))
    except httpx.HTTPError as exc:
        raise LightningAddressError(f"{address}: cannot reach {what} "
                                    f"({type(exc).__name__})") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise LightningAddressError(f"{address}: {what} answered HTTP {response.status_code} "
                                    "without LNURL JSON")
    if str(data.get("status", "")).upper() == "ERROR":
        reason = str(data.get("reason") or "no reason given")[:200]
        raise LightningAddressError(f"{address}: {what} refused: {reason}")
    if response.status_code != 200:
        raise LightningAddressError(f"{address}: {what} answered HTTP {response.status_code}")
    return data


def _check_callback(callback: object, address: str) -> str:
    if not isinstance(callback, str):
        raise LightningAddressError(f"{address}: payRequest has no callback")
    parts = urlsplit(callback)
    if not parts.hostname or parts.scheme not in {"https", _scheme(parts.netloc)}:
        raise LightningAddressError(f"{address}: callback must be https, got {callback[:80]!r}")
    return callback


async def invoice_for_address(address: str, amount_msat: int, comment: str | None = None, *,
                              client: httpx.AsyncClient | None = None) -> str:
    """Ask `address` for an invoice of `amount_msat` and check it; returns the BOLT11."""
    url = address_url(address)
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
    try:
        offer = await _get_json(http, url, {}, address, "the address")
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
        allowed = int(offer.get("commentAllowed") or 0)
        if comment and allowed > 0:
            params["comment"] = comment[:allowed]  # the service would refuse a longer one
        answer = await _get_json(http, callback, params, address, "the callback")
    finally:
        if own_client:
            await http.aclose()
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
                                client: httpx.AsyncClient | None = None) -> PaymentResult:
    """Pay `amount_msat` to a lightning address through `wallet` (once per invoice)."""
    invoice = await invoice_for_address(address, amount_msat, comment, client=client)
    return await wallet.pay(invoice, max_fee_msat=max_fee_msat)


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None
