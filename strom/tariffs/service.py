"""The tariff service: the current price of a charge point, from whichever source applies."""

from __future__ import annotations

from strom.config import TariffSettings
from strom.store.charge_points import ChargePoint
from strom.tariffs.model import Tariff
from strom.tariffs.static import static_tariff


class TariffService:
    def __init__(self, default: TariffSettings) -> None:
        self._default = default

    def current(self, cp: ChargePoint) -> Tariff:
        """The price a driver would lock in by paying now."""
        return static_tariff(self._default, cp)
