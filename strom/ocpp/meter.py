"""MeterValues → checked rows in Wh, W and percent, whatever unit the charger used.

OCPP 1.6 and 2.0.1 sampled values are read here alike: 1.6 sends `value` as a decimal string
and `unit`; 2.0.1 a JSON number and `unitOfMeasure` {unit, multiplier (a power of ten)}, and
may put a `signedMeterValue` beside the plain value (kept for audit in `Parsed.signed_values`).

This is the edge for numbers from chargers: a value becomes a row only if it is a plain
decimal number, finite, in a unit that fits its measurand and within physical bounds. Anything
else (NaN, ±inf, `1e400`, `abc`, a negative register, a 5 MW power, a SoC of 140 %) is refused
with a reason the caller logs; it is never stored, billed or shown.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from strom.store.transactions import MeterRow
from strom.timeutil import iso, parse_iso, utcnow

ENERGY = "Energy.Active.Import.Register"
ENERGY_INTERVAL = "Energy.Active.Import.Interval"
POWER = "Power.Active.Import"
SOC = "SoC"
SIGNED = "SignedData"

# Bounds (after unit conversion). No charger's register reaches 10 GWh (a 350 kW charger running
# for three years); no charger delivers 1 MW. Energy registers and intervals are never negative.
MAX_ENERGY_WH = 1e10
MAX_POWER_W = 1e6
MAX_OTHER = 1e9  # currents, voltages, temperatures, …: only absurd magnitudes are refused
MAX_VALUE_CHARS = 64
MAX_MULTIPLIER = 9  # 2.0.1 unitOfMeasure.multiplier: 10^±9 covers every unit a meter uses
MAX_SIGNED_CHARS = 4096  # a signedMeterValue kept for audit (OCMF of one reading is < 1 KB)

# A plain decimal number as OCPP 1.6 sends it in `value` (no "inf", "nan", "0x10" or "1_000").
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

_SCALE = {"kWh": 1000.0, "kW": 1000.0, "kvarh": 1000.0, "kvar": 1000.0, "kVA": 1000.0}
_BASE = {"kWh": "Wh", "kW": "W", "kvarh": "varh", "kvar": "var", "kVA": "VA"}
# Measurand prefix → (units that fit it, the unit meant when none is given, lowest, highest).
# OCPP 1.6 says a missing unit means Wh; for power and SoC chargers mean W and percent, and
# for others (Frequency, Power.Factor) no unit at all.
_Kind = tuple[str, frozenset[str], str, float, float]
_UNITLESS = frozenset({""})  # a kind without a unit takes any
_KINDS: tuple[_Kind, ...] = (
    ("Energy.Active.", frozenset({"Wh", "kWh"}), "Wh", 0.0, MAX_ENERGY_WH),
    ("Energy.Reactive.", frozenset({"varh", "kvarh"}), "varh", 0.0, MAX_ENERGY_WH),
    ("Power.Active.", frozenset({"W", "kW"}), "W", -MAX_POWER_W, MAX_POWER_W),
    ("Power.Offered", frozenset({"W", "kW"}), "W", 0.0, MAX_POWER_W),
    ("Power.Reactive.", frozenset({"var", "kvar"}), "var", -MAX_POWER_W, MAX_POWER_W),
    ("Power.Factor", _UNITLESS, "", -1.0, 1.0),
    (SOC, frozenset({"Percent"}), "Percent", 0.0, 100.0),
)


@dataclass
class Parsed:
    """The rows of one MeterValues (or StopTransaction's transactionData) and what was refused."""

    rows: list[MeterRow] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # one reason per refused value
    signed: int = 0  # SignedData values without a plain value next to them: not used
    # 2.0.1 signedMeterValue objects next to plain values, as sent (each cut to 4 KB)
    signed_values: list[dict[str, Any]] = field(default_factory=list)


def parse_meter_values(connector_id: int, transaction_id: int | None,
                       meter_value: Iterable[Any]) -> Parsed:
    """Every usable sampled value as a row in the base unit (kWh → Wh, kW → W); never raises.

    A missing measurand means the energy register (OCPP 1.6 default). `SignedData` values are
    not read (strom cannot verify them); a charger that signs usually sends the plain value too.
    """
    parsed = Parsed()
    for entry in meter_value if isinstance(meter_value, list) else []:
        if not isinstance(entry, dict):
            parsed.refused.append("a meterValue that is not an object")
            continue
        at = _timestamp(entry.get("timestamp"))
        sampled = entry.get("sampled_value", entry.get("sampledValue"))
        for sample in sampled if isinstance(sampled, list) else []:
            row = _row(connector_id, transaction_id, at, sample, parsed)
            if row is not None:
                parsed.rows.append(row)
    return parsed


def _row(connector_id: int, transaction_id: int | None, at: str, sample: Any,
         parsed: Parsed) -> MeterRow | None:
    if not isinstance(sample, dict):
        parsed.refused.append("a sampledValue that is not an object")
        return None
    get = sample.get
    measurand = _text(get("measurand")) or ENERGY
    if get("format") == SIGNED:
        parsed.signed += 1
        return None
    signed = get("signed_meter_value", get("signedMeterValue"))
    if isinstance(signed, dict):
        parsed.signed_values.append(signed if len(repr(signed)) <= MAX_SIGNED_CHARS
                                    else {"cut": repr(signed)[:MAX_SIGNED_CHARS]})
    raw = get("value")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = repr(float(raw))  # 2.0.1: a JSON number
    if not isinstance(raw, str) or len(raw) > MAX_VALUE_CHARS or not _NUMBER.fullmatch(
            raw.strip()):
        parsed.refused.append(f"{measurand} value {str(raw)[:MAX_VALUE_CHARS]!r} is not a number")
        return None
    kind = _kind(measurand)
    unit, multiplier = _unit(sample)
    unit = unit or (kind[2] if kind else "")
    if kind is not None and kind[1] is not _UNITLESS and unit not in kind[1]:
        parsed.refused.append(f"{measurand} in {unit!r} (expected {'/'.join(sorted(kind[1]))})")
        return None
    if multiplier is None:
        parsed.refused.append(f"{measurand} with a unit multiplier that is not a whole number"
                              f" within ±{MAX_MULTIPLIER}")
        return None
    value = float(raw) * _SCALE.get(unit, 1.0)
    if multiplier:
        value *= 10.0 ** multiplier
    low, high = (kind[3], kind[4]) if kind else (-MAX_OTHER, MAX_OTHER)
    if not (math.isfinite(value) and low <= value <= high):
        parsed.refused.append(f"{measurand} {raw.strip()} {unit} is out of bounds")
        return None
    return MeterRow(connector_id, transaction_id, at, measurand, value, _BASE.get(unit, unit),
                    _text(get("context")), _text(get("phase")), _text(get("location")))


@functools.lru_cache(maxsize=256)
def _kind(measurand: str) -> _Kind | None:
    """The kind of a measurand (by its prefix), None for one without bounds of its own."""
    return next((k for k in _KINDS if measurand.startswith(k[0])), None)


def _unit(sample: dict[str, Any]) -> tuple[str | None, int | None]:
    """(unit, power of ten) of a 1.6 `unit` or a 2.0.1 `unitOfMeasure`; None: a bad multiplier."""
    measure = sample.get("unit_of_measure", sample.get("unitOfMeasure"))
    if not isinstance(measure, dict):
        return _text(sample.get("unit")), 0
    multiplier = measure.get("multiplier", 0)
    if isinstance(multiplier, bool) or not isinstance(multiplier, int) \
            or abs(multiplier) > MAX_MULTIPLIER:
        return _text(measure.get("unit")), None
    return _text(measure.get("unit")), multiplier


def _text(value: object) -> str | None:
    return value[:64] if isinstance(value, str) and value else None


def _timestamp(value: object) -> str:
    if isinstance(value, str):
        try:
            return iso(parse_iso(value))
        except (ValueError, OverflowError):
            pass
    return iso(utcnow())
