"""NIP-42: check a client's kind-22242 AUTH event against the challenge we sent."""

from __future__ import annotations

import secrets
from typing import Any

from relay.event import AUTH_KIND, Event, InvalidEvent, parse_event, verify_signature

# How far an AUTH event's created_at may be from now, in seconds.
MAX_CLOCK_SKEW = 600


def new_challenge() -> str:
    """A fresh random challenge for one connection."""
    return secrets.token_hex(16)


def normalize_url(url: str) -> str:
    """Relay URLs compare without case and trailing slash (`ws://Host:1/` = `ws://host:1`)."""
    return url.strip().rstrip("/").lower()


def verify_auth(obj: Any, *, challenge: str, relay_urls: frozenset[str], now: int) -> Event:
    """The verified AUTH event; raises InvalidEvent with the reason.

    `relay_urls` are the normalized URLs under which clients may know this relay.
    """
    event = parse_event(obj)
    if event.kind != AUTH_KIND:
        raise InvalidEvent(f"AUTH needs a kind {AUTH_KIND} event")
    if not verify_signature(event):
        raise InvalidEvent("bad signature")
    if abs(event.created_at - now) > MAX_CLOCK_SKEW:
        raise InvalidEvent("created_at is too far from now")
    if event.first_value("challenge") != challenge:
        raise InvalidEvent("challenge does not match")
    relay = event.first_value("relay")
    if relay is None or normalize_url(relay) not in relay_urls:
        raise InvalidEvent("relay tag does not name this relay")
    return event
