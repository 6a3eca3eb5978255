"""Static tariffs: the configured default, overridden per charge point."""

from __future__ import annotations

from dataclasses import fields

from strom.config import TariffSettings
from strom.store.charge_points import ChargerRecord
from strom.tariffs.model import Tariff

_OVERRIDABLE = {f.name for f in fields(Tariff)} - {"source", "valid_until", "basis", "lock",
                                                "later_prices", "max_power_w"}


def static_tariff(default: TariffSettings, cp: ChargerRecord) -> Tariff:
    """The charge point's tariff: its own overrides on top of `[tariff]`."""
    values = default.model_dump()
    values.update({k: int(v) for k, v in cp.tariff.items() if k in _OVERRIDABLE})
    return Tariff(**{k: v for k, v in values.items() if k in _OVERRIDABLE}, source="static")
