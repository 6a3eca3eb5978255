"""The slow rate: a cheaper price for a session that charges at most so many watts.

The driver picks it when paying (`?rate=slow` on the LNURL, the `/cp/{id}` page's second QR,
a zap or DM with the word `slow`); the tariff locked with the session then carries
`max_power_w`, which strom sends to the charger as the session's power limit (`SitePower`).
A charger known to refuse limits is not offered it. One that accepts and then ignores the
limit still bills at the slow price: strom promised slow charging for less money, and the
faster energy is the operator's loss, never the driver's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from strom.config import TariffSettings
from strom.store.charge_points import ChargerRecord
from strom.tariffs.model import Tariff

NORMAL = "normal"
SLOW = "slow"
RATES = (NORMAL, SLOW)
# Per-charger overrides (kept with the charge point's tariff, `/api/v1/tariffs/{cp_id}`).
OVERRIDES = {"slow_max_power_w": "max_power_w",
             "slow_price_msat_per_kwh": "price_msat_per_kwh",
             "slow_discount_percent": "discount_percent"}


@dataclass(frozen=True, slots=True)
class SlowRate:
    """A charge point's slow rate: its power limit and how its price is made."""

    max_power_w: int
    price_msat_per_kwh: int | None
    discount_percent: int


def slow_rate(default: TariffSettings, cp: ChargerRecord) -> SlowRate | None:
    """The charge point's slow rate (`[tariff.slow_rate]` with its overrides), None: none."""
    values = default.slow_rate.model_dump()
    values.update({field: int(cp.tariff[key]) for key, field in OVERRIDES.items()
                   if key in cp.tariff})
    rate = SlowRate(**values)
    return rate if rate.max_power_w > 0 else None


def slowed(tariff: Tariff, rate: SlowRate) -> Tariff:
    """`tariff` at the slow rate: limited to `max_power_w`, cheaper per kWh (never dearer)."""
    def cheaper(price: int) -> int:
        if rate.price_msat_per_kwh is not None:
            return min(price, rate.price_msat_per_kwh)
        return price * (100 - rate.discount_percent) // 100

    later = [[start, end, cheaper(int(price))] for start, end, price in tariff.later_prices] \
        if tariff.later_prices else tariff.later_prices
    return replace(tariff, price_msat_per_kwh=cheaper(tariff.price_msat_per_kwh),
                   later_prices=later, max_power_w=rate.max_power_w)
