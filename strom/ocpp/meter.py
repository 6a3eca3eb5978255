"""MeterValues → stored rows and `MeterSample` events, in Wh, W and percent whatever the unit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strom.events import MeterSample
from strom.store.transactions import MeterRow
from strom.timeutil import iso, parse_iso, utcnow

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
SOC = "SoC"

# Multipliers to the base unit strom computes with (Wh, W, var, Varh …).
_SCALE = {"kWh": 1000.0, "kW": 1000.0, "kvarh": 1000.0, "kvar": 1000.0, "kVA": 1000.0}
_BASE = {"kWh": "Wh", "kW": "W", "kvarh": "varh", "kvar": "var", "kVA": "VA"}


def meter_rows(connector_id: int, transaction_id: int | None,
               meter_value: Iterable[dict[str, Any]]) -> list[MeterRow]:
    """Every numeric sampled value as a row, converted to the base unit (kWh → Wh, kW → W).

    Signed or otherwise non-numeric values are not stored as numbers; a missing measurand
    means energy and a missing unit means Wh (OCPP 1.6 defaults).
    """
    rows: list[MeterRow] = []
    for entry in meter_value:
        at = _timestamp(entry.get("timestamp"))
        for sample in entry.get("sampled_value") or []:
            if sample.get("format") == "SignedData":
                continue
            try:
                value = float(sample["value"])
            except (KeyError, TypeError, ValueError):
                continue
            measurand = sample.get("measurand") or ENERGY
            unit = sample.get("unit") or ("Percent" if measurand == SOC else "Wh")
            rows.append(MeterRow(connector_id, transaction_id, at, measurand,
                                 value * _SCALE.get(unit, 1.0), _BASE.get(unit, unit),
                                 sample.get("context"), sample.get("phase"),
                                 sample.get("location")))
    return rows


def samples(cp_id: str, rows: list[MeterRow]) -> list[MeterSample]:
    """One `MeterSample` per timestamp: total energy, total power and SoC of the vehicle.

    Per-phase values are summed when the charger sends no total; values measured at the
    inlet/cable/EV location other than the outlet are only used for SoC.
    """
    by_time: dict[tuple[str, int, int | None], list[MeterRow]] = {}
    for row in rows:
        by_time.setdefault((row.at, row.connector_id, row.transaction_id), []).append(row)
    events = []
    for (at, connector_id, transaction_id), group in by_time.items():
        events.append(MeterSample(
            cp_id=cp_id, connector_id=connector_id, transaction_id=transaction_id,
            timestamp=parse_iso(at), energy_wh=_total(group, ENERGY),
            power_w=_total(group, POWER), soc_percent=_first(group, SOC)))
    return events


def _total(rows: list[MeterRow], measurand: str) -> float | None:
    values = [r for r in rows if r.measurand == measurand
              and r.location in (None, "Outlet") and r.phase in (None, "")]
    if values:
        return values[-1].value
    phases = [r for r in rows if r.measurand == measurand and r.location in (None, "Outlet")
              and r.phase in ("L1", "L2", "L3")]
    return sum(r.value for r in phases) if phases else None


def _first(rows: list[MeterRow], measurand: str) -> float | None:
    return next((r.value for r in rows if r.measurand == measurand), None)


def _timestamp(value: object) -> str:
    if isinstance(value, str):
        try:
            return iso(parse_iso(value))
        except ValueError:
            pass
    return iso(utcnow())
