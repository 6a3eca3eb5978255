"""OCPI credentials tokens on the wire and at rest.

OCPI 2.2.1 sends `Authorization: Token <base64 of the token>`; OCPI 2.1.1 clients send the
token as it is. strom accepts both: it looks up the decoded value and the raw value. Tokens
are stored as SHA-256 hashes and looked up by hash (the comparison is the database's index
lookup on a hash, so timing says nothing about the token).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

MAX_TOKEN = 255  # CiString(255), the credentials token's type


def new_token() -> str:
    """A fresh credentials token: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def header_value(token: str) -> str:
    """What strom puts in `Authorization` when it calls an eMSP (2.2.1: base64)."""
    return "Token " + base64.b64encode(token.encode()).decode("ascii")


def candidates(authorization: str | None) -> list[str]:
    """The tokens an `Authorization` header may carry: base64-decoded first, then as sent."""
    if not authorization:
        return []
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value or len(value) > 4 * MAX_TOKEN:
        return []
    found = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if decoded and decoded.isprintable():
        found.append(decoded)
    if value != decoded:
        found.append(value)
    return found
