"""The currency of the prices and costs strom publishes to eMSPs (`[ocpi] currency`).

`BTC` (a documented extension, not an ISO 4217 code): amounts exact to the msat, 11 decimals.
`EUR`: msat converted at strom's BTC/EUR price feed (`[tariff.feeds] btc_url`, the dynamic
tariff's feed) to OCPI's 4 decimals. strom bills in msat either way, so the exact figure stays
beside the converted one (`strom_cost_msat`), and a converted object names its rate and the
time the feed gave it (`strom_eur_per_btc`, `strom_rate_at`). Without a rate younger than
`[tariff.feeds] max_age_seconds` strom invents none: that publication is in BTC, and the log
says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strom.config import OcpiSettings
from strom.tariffs.pricing import BtcRate
from strom.timeutil import iso

log = logging.getLogger(__name__)

MSAT_PER_BTC = 100_000_000_000
EUR_DECIMALS = 4  # OCPI 2.2.1 §16.4 "number": 4 decimals unless a field says otherwise


def btc(msat: int) -> float:
    """msat as a BTC amount with 11 decimals (exact to the msat)."""
    return round(msat / MSAT_PER_BTC, 11)


@dataclass(frozen=True, slots=True)
class Conversion:
    """How msat become the published amounts: in BTC, or in EUR at one recorded rate."""

    currency: str  # "BTC" or "EUR"
    eur_per_btc: float | None = None
    rate_at: str | None = None  # when the feed gave the rate (ISO 8601)

    def amount(self, msat: int) -> float:
        if self.eur_per_btc is None:
            return btc(msat)
        return round(msat * self.eur_per_btc / MSAT_PER_BTC, EUR_DECIMALS)

    def extension(self) -> dict[str, Any]:
        """The rate and its time, on an object converted to EUR (nothing for BTC)."""
        if self.eur_per_btc is None:
            return {}
        return {"strom_eur_per_btc": self.eur_per_btc, "strom_rate_at": self.rate_at}


IN_BTC = Conversion("BTC")


def recorded(eur_per_btc: float | None, rate_at: str | None) -> Conversion:
    """The conversion a stored CDR was made with (no rate: it was in BTC)."""
    return IN_BTC if eur_per_btc is None else Conversion("EUR", eur_per_btc, rate_at)


class Currency:
    """The conversion of a publication now: `[ocpi] currency`, and for EUR a fresh rate."""

    def __init__(self, settings: OcpiSettings, rate: Callable[[], BtcRate | None]) -> None:
        self._wanted = settings.currency
        self._rate = rate
        self._without_rate = False

    def now(self) -> Conversion:
        if self._wanted == "BTC":
            return IN_BTC
        rate = self._rate()
        if rate is None:
            if not self._without_rate:
                log.warning("OCPI: no BTC/EUR rate younger than [tariff.feeds] max_age_seconds;"
                            " tariffs, sessions and CDRs are published in BTC until there is")
            self._without_rate = True
            return IN_BTC
        if self._without_rate:
            log.info("OCPI: a fresh BTC/EUR rate again; publishing in EUR")
            self._without_rate = False
        return Conversion("EUR", rate.eur_per_btc, iso(rate.at))
