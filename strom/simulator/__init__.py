"""OCPP 1.6J charge-point simulator: one charger (`SimulatedChargePoint`) or many (`Fleet`)."""

from __future__ import annotations

from strom.simulator.charge_point import SimEvent, SimulatedChargePoint
from strom.simulator.fleet import Fleet, FleetCounts, fleet_ids

__all__ = ["Fleet", "FleetCounts", "SimEvent", "SimulatedChargePoint", "fleet_ids"]
