"""strom's prices as OCPI 2.2.1 Tariffs (part 11), one per charger (its id).

Currency: strom prices in msat, so Tariffs are in `BTC` and exact, or in EUR at the BTC/EUR
feed's rate (see `strom.ocpi.currency`). A dynamic price is one
element per spot slot, restricted to its hours (written in UTC, which the restrictions read in
the Location's `time_zone`: keep `[ocpi] time_zone` UTC while dynamic prices are published),
the tariff valid until the last published slot ends (`end_date_time`); the current price
alone when no slots are published.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from strom.config import OcpiSettings
from strom.ocpi.currency import IN_BTC, Conversion
from strom.tariffs.dynamic import PriceSlot
from strom.tariffs.model import Tariff
from strom.timeutil import iso


def _components(tariff: Tariff, energy_msat_per_kwh: int,
                money: Conversion) -> list[dict[str, Any]]:
    parts = [{"type": "ENERGY", "price": money.amount(energy_msat_per_kwh), "step_size": 1}]
    if tariff.price_msat_per_minute:
        parts.append({"type": "TIME", "price": money.amount(tariff.price_msat_per_minute * 60),
                      "step_size": 1})
    return parts


def ocpi_tariff(cp_id: str, tariff: Tariff, slots: list[PriceSlot], settings: OcpiSettings,
                last_updated: str, money: Conversion = IN_BTC) -> dict[str, Any]:
    """The OCPI Tariff of one charger at its current price (and published slots)."""
    elements: list[dict[str, Any]] = []
    if tariff.session_fee_msat:
        elements.append({"price_components": [
            {"type": "FLAT", "price": money.amount(tariff.session_fee_msat), "step_size": 1}]})
    end = tariff.valid_until
    if slots:
        for slot in slots:
            start, stop = slot.start.astimezone(UTC), slot.end.astimezone(UTC)
            # end_date is exclusive (2.2.1 TariffRestrictions): the day after the slot began;
            # an end_time before the start_time crosses midnight.
            elements.append({"price_components": _components(tariff, slot.price_msat_per_kwh, money),
                             "restrictions": {
                                 "start_date": start.strftime("%Y-%m-%d"),
                                 "end_date": (start + timedelta(days=1)).strftime("%Y-%m-%d"),
                                 "start_time": start.strftime("%H:%M"),
                                 "end_time": stop.strftime("%H:%M")}})
        end = iso(slots[-1].end)
    else:
        elements.append({"price_components": _components(tariff, tariff.price_msat_per_kwh, money)})
    body: dict[str, Any] = {
        "country_code": settings.country_code, "party_id": settings.party_id, "id": cp_id,
        "currency": money.currency,
        "elements": elements, "last_updated": last_updated, **money.extension(),
    }
    if tariff.source == "dynamic" and end:
        body["end_date_time"] = end
    return body
