"""Checks of `strom init`'s answers. Each returns what it found or raises `Problem`, whose
message is one line saying what to fix (never echoing a secret)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from strom.config import LndSettings, plain_http_allowed
from strom.lightning.lnd import lnd_network
from strom.lightning.lnd_rest import LndError, LndRest
from strom.lightning.macaroon import (
    STROM_NEEDS,
    MacaroonError,
    lnd_permissions,
    macaroon_file,
    read_macaroon,
)
from strom.lightning.nwc_client import parse_uri
from strom.lightning.wallet import WalletConfigError, WalletUnavailable

LND_TIMEOUT = 10.0  # seconds for the one getinfo call
# A DNS name or an IPv4 address, or (urlsplit drops the brackets) an IPv6 address.
_HOST = re.compile(r"^([a-z0-9-]+(\.[a-z0-9-]+)*|[0-9a-f:.]*:[0-9a-f:.]*)$")


class Problem(ValueError):
    """One answer is wrong: the message names it and says what to do."""


def _split(text: str, flag: str, example: str) -> SplitResult:
    """`text` as an http(s) URL with a well-formed host and port, or a Problem."""
    whole = Problem(f"{flag} {text!r}: give a full URL such as {example}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:
        raise whole from None
    if parts.scheme not in ("http", "https") or not _HOST.match(parts.hostname or ""):
        raise whole
    return parts


def check_public_url(url: str) -> str:
    """The base URL wallets reach strom by, without a trailing slash.

    LUD-01: an LNURL must be https, except on loopback and .onion hosts, where plain http is
    allowed (a wallet refuses anything else).
    """
    text = url.strip()
    parts = _split(text, "--public-url", "https://charge.example.com")
    host = parts.hostname or ""
    if parts.query or parts.fragment or parts.username or parts.password:
        raise Problem(f"--public-url {text!r}: only the base URL, no query, fragment or "
                      "credentials")
    if parts.scheme == "http" and not plain_http_allowed(host):
        raise Problem(f"--public-url {text!r}: wallets accept plain http only for localhost and "
                      ".onion (LUD-01); use https:// (a TLS reverse proxy in front of strom)")
    return text.rstrip("/")


@dataclass(frozen=True)
class LndNode:
    """A node that answered getinfo: how it was reached and what it told (the network in
    strom's spelling). `macaroon_file` is None when the macaroon was given as hex."""

    url: str
    tls_cert: str
    macaroon: bytes
    macaroon_file: Path | None
    network: str
    alias: str


def _file(given: str, flag: str) -> Path:
    path = Path(given).expanduser().resolve()
    if not path.is_file():
        raise Problem(f"{flag} {given}: no such file")
    return path


async def check_lnd(url: str, macaroon: str, cert: str | None) -> LndNode:
    """Decode the macaroon, then reach LND's REST API with it (one getinfo)."""
    if not macaroon.strip():
        raise Problem("--lnd-macaroon: give the path of your node's admin.macaroon (or its hex)")
    try:
        data, parsed = read_macaroon(macaroon)
    except MacaroonError as exc:
        raise Problem(f"--lnd-macaroon: not an LND macaroon: {exc}") from None
    granted = lnd_permissions(parsed)
    if granted is not None and not STROM_NEEDS <= granted:
        missing = " ".join(sorted(STROM_NEEDS - granted))
        raise Problem(f"--lnd-macaroon: it does not allow {missing}; use admin.macaroon or "
                      f"`lncli bakemacaroon {' '.join(sorted(STROM_NEEDS))}`")
    _split(url.strip(), "--lnd-rest-url", "https://127.0.0.1:8080")
    cert_path = str(_file(cert, "--lnd-cert")) if cert else ""
    settings = LndSettings(url=url.strip(), macaroon_hex=data.hex(), tls_cert=cert_path)
    rest = LndRest(settings, timeout=LND_TIMEOUT)
    try:
        await rest.open()
        info = await rest.get("/v1/getinfo")
    except WalletConfigError as exc:
        raise Problem(str(exc).replace("[lightning.lnd] url", "--lnd-rest-url")
                      .replace("[lightning.lnd] tls_cert", "--lnd-cert")) from None
    except WalletUnavailable as exc:
        if "refused our macaroon" in str(exc):
            raise Problem(f"--lnd-macaroon: {exc}") from None
        hint = " (check --lnd-cert: LND's tls.cert)" if "SSL" in str(exc) else ""
        raise Problem(f"--lnd-rest-url: {exc}{hint}") from None
    except LndError as exc:
        raise Problem(f"--lnd-rest-url: LND refused getinfo: {exc.lnd_message}") from None
    finally:
        await rest.close()
    network = lnd_network(info)
    if network not in ("mainnet", "testnet", "signet", "regtest"):
        raise Problem(f"--lnd-rest-url: LND is on {network or 'an unknown network'}, which strom "
                      "does not know")
    source = macaroon_file(macaroon)
    return LndNode(settings.url.rstrip("/"), cert_path, data,
                   source.resolve() if source else None, network, str(info.get("alias", "")))


def check_nwc(uri: str) -> str:
    """The NWC URI, if it parses: nostr+walletconnect://PUBKEY?relay=…&secret=…"""
    try:
        parse_uri(uri)
    except WalletConfigError as exc:
        raise Problem(str(exc).replace("[lightning.nwc] uri", "--nwc-uri")) from None
    return uri.strip()


def check_lnd_sync(url: str, macaroon: str, cert: str | None) -> LndNode:
    """`check_lnd` for the synchronous command line."""
    return asyncio.run(check_lnd(url, macaroon, cert))
