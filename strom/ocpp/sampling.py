"""What a charger samples: configured once it has booted, so strom gets readings it can bill.

After a BootNotification strom reads the charger's metering keys (GetConfiguration) and asks
for (ChangeConfiguration):

- `MeterValuesSampledData`: the energy register, power and SoC, keeping what the charger
  samples besides, shortened to `MeterValuesSampledDataMaxLength`. A charger that rejects the
  list (some reject measurands they cannot measure) is asked again with fewer: register and
  power, then the register alone.
- `MeterValueSampleInterval`: at most `[ocpp] meter_sample_interval` seconds; a charger that
  samples more often is left alone, one that never samples (0) is asked to.
- `StopTxnSampledData`: the energy register, so StopTransaction carries the final reading.
- `TxStartedMeasurands` (2.0.1 only, `SampledDataCtrlr`): the energy register, so the Started
  event carries the meter's start and the energy up to the first Updated event is billed
  (1.6 has no such key: StartTransaction's meterStart is the register; unknown is no failure).

A key that is read-only, unknown, rejected or not supported is recorded, not fought over:
`SamplingSetup.failed` names each with the reason (event log, a log line, the admin JSON).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from strom.chargers.control import ChargerControl, Outcome
from strom.ocpp.meter import ENERGY, POWER, SOC

WANTED = (ENERGY, POWER, SOC)
SAMPLED = "MeterValuesSampledData"
SAMPLED_MAX = "MeterValuesSampledDataMaxLength"
INTERVAL = "MeterValueSampleInterval"
STOP_SAMPLED = "StopTxnSampledData"
STOP_SAMPLED_MAX = "StopTxnSampledDataMaxLength"
START_SAMPLED = "TxStartedMeasurands"
KEYS = [SAMPLED, SAMPLED_MAX, INTERVAL, STOP_SAMPLED, STOP_SAMPLED_MAX, START_SAMPLED]


@dataclass
class SamplingSetup:
    """The outcome per key: set to a value, already fine, or failed with a reason."""

    changed: dict[str, str] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"changed": self.changed, "kept": self.kept, "failed": self.failed}


async def configure_sampling(charger: ChargerControl, cp_id: str, interval: int) -> SamplingSetup:
    """Read and set the charger's metering keys; what failed, and why, is in `failed`."""
    setup = SamplingSetup()
    config = await charger.get_configuration(cp_id, KEYS)
    if not config.result.ok:
        setup.failed["GetConfiguration"] = config.result.reason
        return setup
    values = {key.lower(): value for key, value in config.values.items()}
    readonly = {key.lower() for key in config.readonly}
    unknown = {key.lower() for key in config.unknown}

    async def change(key: str, candidates: list[str]) -> bool:
        """Try the candidates in turn; False when the charger went away (ask no more)."""
        if key.lower() in unknown:
            if key != START_SAMPLED:  # a 1.6 charger has none: not a failure
                setup.failed[key] = "unknown to the charger"
            return True
        if key.lower() in readonly:
            setup.failed[key] = f"read-only ({values.get(key.lower()) or 'empty'})"
            return True
        status = "?"
        for value in candidates:
            result = await charger.change_configuration(cp_id, key, value)
            if result.status is None:  # offline, a CALLERROR or no answer: this key only
                setup.failed[key] = result.reason
                return result.outcome != Outcome.NOT_CONNECTED
            if result.ok:
                setup.changed[key] = value
                return True
            status = result.status
            if result.outcome != Outcome.REJECTED:
                break  # NotSupported: fewer measurands will not help
        setup.failed[key] = status
        return True

    for key, max_key in ((SAMPLED, SAMPLED_MAX), (STOP_SAMPLED, STOP_SAMPLED_MAX),
                         (START_SAMPLED, None)):
        wanted = WANTED if key == SAMPLED else (ENERGY,)
        current = _csl(values.get(key.lower()))
        if set(wanted) <= set(current):
            setup.kept[key] = ",".join(current)
            continue
        limit = (_int(values.get(max_key.lower())) if max_key else None) \
            or len(wanted) + len(current)
        extras = [m for m in current if m not in wanted]
        candidates = [[*wanted, *extras][:max(1, limit)], *(
            list(wanted[:n]) for n in range(len(wanted), 0, -1) if n <= limit)]
        if not await change(key, _unique(",".join(c) for c in candidates)):
            return setup

    current_interval = _number(values.get(INTERVAL.lower()))
    if current_interval is not None and 0 < current_interval <= interval:
        setup.kept[INTERVAL] = values[INTERVAL.lower()] or ""
    else:
        await change(INTERVAL, [str(interval)])
    return setup


def _csl(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _int(value: str | None) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 1 else None
