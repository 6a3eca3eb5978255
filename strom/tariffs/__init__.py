"""Tariffs: what charging costs, fixed when the driver pays and shown before they pay."""

from strom.tariffs.model import Tariff, cost_msat, describe

__all__ = ["Tariff", "cost_msat", "describe"]
