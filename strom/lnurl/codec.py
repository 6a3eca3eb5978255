"""LNURL encodings: bech32 `LNURL1…` (LUD-01) and the `lnurlp://`/`lnurlw://` schemes (LUD-17)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from lnurl.helpers import url_decode, url_encode


def lnurl_encode(url: str) -> str:
    """The bech32 LNURL of `url`, upper-case (smaller QR codes: alphanumeric mode)."""
    return url_encode(url).upper()


def lnurl_decode(encoded: str) -> str:
    return url_decode(encoded)


def lud17(url: str, scheme: str) -> str:
    """`https://host/path` → `lnurlp://host/path` (LUD-17); `scheme` is lnurlp, lnurlw, …"""
    parts = urlsplit(url)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
