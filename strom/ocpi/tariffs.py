"""strom's prices as OCPI 2.2.1 Tariffs (part 11), one per charger (its id).

Currency: strom prices in msat, so Tariffs are in `BTC` (a documented extension: not an ISO
4217 code; prices carry up to 11 decimals, one msat) and exact. A dynamic price is one
element per spot slot, restricted to its hours (written in UTC, which the restrictions read in
the Location's `time_zone`: keep `[ocpi] time_zone` UTC while dynamic prices are published),
the tariff valid until the last published slot ends (`end_date_time`); the current price
alone when no slots are published.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from strom.config import OcpiSettings
from strom.tariffs.dynamic import PriceSlot
from strom.tariffs.model import Tariff
from strom.timeutil import iso

CURRENCY = "BTC"
MSAT_PER_BTC = 100_000_000_000


def btc(msat: int) -> float:
    """msat as a BTC amount with 11 decimals (exact to the msat)."""
    return round(msat / MSAT_PER_BTC, 11)


def _components(tariff: Tariff, energy_msat_per_kwh: int) -> list[dict[str, Any]]:
    parts = [{"type": "ENERGY", "price": btc(energy_msat_per_kwh), "step_size": 1}]
    if tariff.price_msat_per_minute:
        parts.append({"type": "TIME", "price": btc(tariff.price_msat_per_minute * 60),
                      "step_size": 1})
    return parts


def ocpi_tariff(cp_id: str, tariff: Tariff, slots: list[PriceSlot], settings: OcpiSettings,
                last_updated: str) -> dict[str, Any]:
    """The OCPI Tariff of one charger at its current price (and published slots)."""
    elements: list[dict[str, Any]] = []
    if tariff.session_fee_msat:
        elements.append({"price_components": [
            {"type": "FLAT", "price": btc(tariff.session_fee_msat), "step_size": 1}]})
    end = tariff.valid_until
    if slots:
        for slot in slots:
            start, stop = slot.start.astimezone(UTC), slot.end.astimezone(UTC)
            # end_date is exclusive (2.2.1 TariffRestrictions): the day after the slot began;
            # an end_time before the start_time crosses midnight.
            elements.append({"price_components": _components(tariff, slot.price_msat_per_kwh),
                             "restrictions": {
                                 "start_date": start.strftime("%Y-%m-%d"),
                                 "end_date": (start + timedelta(days=1)).strftime("%Y-%m-%d"),
                                 "start_time": start.strftime("%H:%M"),
                                 "end_time": stop.strftime("%H:%M")}})
        end = iso(slots[-1].end)
    else:
        elements.append({"price_components": _components(tariff, tariff.price_msat_per_kwh)})
    body: dict[str, Any] = {
        "country_code": settings.country_code, "party_id": settings.party_id, "id": cp_id,
        "currency": CURRENCY,
        "elements": elements, "last_updated": last_updated,
    }
    if tariff.source == "dynamic" and end:
        body["end_date_time"] = end
    return body
