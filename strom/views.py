"""Public JSON views (contract §6) shared by the pages, the APIs, the TUI and the nostr bots."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

import geohash2

from strom.container import Services
from strom.lnurl.codec import lnurl_encode
from strom.lnurl.links import pay_links
from strom.sessions.model import Session
from strom.store.charge_points import ChargerRecord


@functools.lru_cache(maxsize=65_536)
def geohash(lat: float, lon: float, precision: int = 9) -> str:
    """The charger's geohash; remembered: each status event and view asks again (~6 µs)."""
    return str(geohash2.encode(lat, lon, precision=precision))


def charge_point_json(svc: Services, cp: ChargerRecord) -> dict[str, Any]:
    """A charge point as drivers and other software see it (contract §6)."""
    links = pay_links(svc.settings.public_url, cp.id)
    npub = svc.keyring.npub(cp.id)
    return {
        "id": cp.id, "name": cp.name,
        "pubkey": svc.keyring.pubkey_hex(cp.id), "npub": npub,
        "lud16": links.address, "lnurl": links.lnurl,
        "url": f"{svc.settings.public_url}/cp/{cp.id}", "status": cp.status,
        "location": {"lat": cp.lat, "lon": cp.lon, "geohash": geohash(cp.lat, cp.lon)},
        "connectors": [{"id": c.connector_id, "status": c.status if cp.connected else "Offline",
                        "lnurl": pay_links(svc.settings.public_url, cp.id, c.connector_id).lnurl,
                        **_reserved(svc, cp.id, c.connector_id)}
                       for c in cp.connectors if c.connector_id > 0],
        "tariff": svc.tariffs.current(cp).to_json(),
    }


def _reserved(svc: Services, cp_id: str, connector_id: int) -> dict[str, str]:
    """`reserved_until` while a paid reservation holds the connector (issue 21)."""
    until = svc.use_cases.reservations.reserved_until(cp_id, connector_id)
    return {"reserved_until": until} if until else {}


def document_url(public_url: str, cp_id: str) -> str:
    """The charge point's public JSON: the full price schedule that nostr status links to."""
    return f"{public_url}/api/v1/public/charge-points/{quote(cp_id)}"


def market_json(svc: Services, cp: ChargerRecord) -> dict[str, Any] | None:
    """Dynamic tariffs only: the feeds' public state and every coming slot's price."""
    tariffs = svc.tariffs
    if not tariffs.is_dynamic(cp):
        return None
    return {"feeds": tariffs.status().public_json(),
            "schedule": [slot.to_json() for slot in tariffs.schedule(cp)]}


def session_json(svc: Services, session: Session, *, payer: bool = True) -> dict[str, Any]:
    """A session as its payer sees it (contract §6), with the stop/refund LNURL-withdraw.

    With `payer=False` (the read-only view link, the operator's API) `lnurlw` is null and
    `url` is the view link: nothing in it stops the session or takes its money. Both carry
    `view_url` (shareable, read-only) and `topup_lnurl` (can only pay into the session).
    """
    base = svc.settings.public_url
    links: dict[str, Any] = {
        "view_url": f"{base}/s/{session.view_token}" if session.view_token else None,
        "topup_lnurl": (lnurl_encode(topup_url(svc, session)) if session.topup_token
                        else None)}
    if not payer:
        return session.public_json(lnurlw=None, url=links["view_url"] or "", extra=links)
    return session.public_json(lnurlw=lnurl_encode(f"{base}/lnurlw/{session.token}"),
                               url=f"{base}/s/{session.token}", extra=links)


def topup_url(svc: Services, session: Session) -> str:
    """The top-up payRequest: its token can only pay into the session."""
    return f"{svc.settings.public_url}/topup/{session.topup_token}"
