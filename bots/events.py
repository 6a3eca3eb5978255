"""What a charge point publishes: profile (0), relay lists (10002, 10050), status (30333)."""

from __future__ import annotations

import json
from typing import Any

from nostr_sdk import Keys

from bots.signed import SignedEvent, sign
from strom.views import geohash

PROFILE, RELAY_LIST, DM_RELAYS, STATUS = 0, 10002, 10050, 30333
# Prices in a status: the current one and at most this many coming slots (an hour of
# quarter-hour slots). Relays commonly refuse content over 4 KB (MAX_CONTENT); the whole
# schedule is at the status' `schedule_url`.
STATUS_SLOTS = 4
MAX_CONTENT = 4096


def profile(keys: Keys, cp: dict[str, Any], host: str) -> SignedEvent:
    """Kind 0: name, about, lud16, nip05 and the charger's page."""
    content = {
        "name": cp["name"], "display_name": cp["name"],
        "about": f"EV charge point {cp['id']}. Zap me or pay {cp['lud16']} to charge; "
                 "DM me `help` for commands. Unused prepayment is refunded.",
        "lud16": cp["lud16"], "nip05": f"{cp['id']}@{host}", "website": cp["url"],
    }
    return sign(keys, PROFILE, json.dumps(content), [])


def relay_list(keys: Keys, relays: list[str]) -> SignedEvent:
    """Kind 10002 (NIP-65): where to find this charger's events."""
    return sign(keys, RELAY_LIST, "", [["r", url] for url in relays])


def dm_relays(keys: Keys, relays: list[str]) -> SignedEvent:
    """Kind 10050 (NIP-17): where to send this charger direct messages."""
    return sign(keys, DM_RELAYS, "", [["relay", url] for url in relays])


def status(keys: Keys, cp: dict[str, Any], created_at: int,
           market: dict[str, Any] | None = None, schedule_url: str | None = None) -> SignedEvent:
    """Kind 30333: the charger's live status, location, price and LNURL (contract §5).

    `created_at` must grow with every version: relays keep the newest of an address, and of
    two in the same second the one with the lower id. `market` (dynamic tariffs: feed status
    and the coming slots' prices) goes into the content, cut to a short horizon so the event
    fits public relays' limits; the whole schedule is the document at `schedule_url`.
    """
    lat, lon = cp["location"]["lat"], cp["location"]["lon"]
    full = geohash(lat, lon, 9)
    tags = [["d", cp["id"]], ["status", cp["status"]]]
    tags += [["connector", str(c["id"]), c["status"]] for c in cp["connectors"]]
    tags += [["g", full[:n]] for n in range(9, 0, -1)]
    tags += [["location", f"{lat},{lon}"],
             ["price", str(cp["tariff"]["price_msat_per_kwh"]), "msat/kWh"],
             ["price_source", cp["tariff"]["source"]],
             ["lnurl", cp["lnurl"].lower()],
             ["alt", f"EV charge point {cp['name']}: {cp['status']}"]]
    for slots in range(STATUS_SLOTS, -1, -1):  # fewer slots only for extreme URLs
        content = json.dumps(_status_content(cp, market, schedule_url, slots),
                             ensure_ascii=False, separators=(",", ":"))
        if len(content.encode()) <= MAX_CONTENT:
            break
    return sign(keys, STATUS, content, tags, created_at)


def _status_content(cp: dict[str, Any], market: dict[str, Any] | None,
                    schedule_url: str | None, slots: int) -> dict[str, Any]:
    """The charge point JSON with a short horizon of prices; connectors without their LNURLs
    (16 of them alone would fill 4 KB: the `lnurl` tag and the linked document have them)."""
    tariff = dict(cp["tariff"])
    if tariff.get("later_prices"):
        tariff["later_prices"] = tariff["later_prices"][:slots]
    facts = {**cp, "connectors": [{"id": c["id"], "status": c["status"],
                                   **({"reserved_until": c["reserved_until"]}
                                      if c.get("reserved_until") else {})}
                                  for c in cp["connectors"]], "tariff": tariff}
    if market is not None:
        facts |= {**market, "schedule": market["schedule"][:slots]}
    if schedule_url is not None:
        facts["schedule_url"] = schedule_url
    return facts
