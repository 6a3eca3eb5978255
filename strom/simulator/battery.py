"""A plausible electric vehicle on an AC charger: battery, on-board charger, power curve.

The curve follows what AC sessions look like on a meter: the power ramps up over the first
half minute, stays at the lower of the charger's and the car's limit, and tapers above 80 %
state of charge until the battery is full.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

RAMP_S = 30.0
TAPER_FROM_SOC = 80.0
# At 100 % the car still draws this share of its limit; below it the taper would never end.
TAPER_FLOOR = 0.1
# Integrate in small steps so a large speed factor does not overshoot the taper or the end.
MAX_STEP_S = 10.0
# Common on-board charger limits (W): 1-phase 16 A, 1-phase 32 A, 3-phase 16 A, 3-phase 32 A.
ONBOARD_CHARGERS_W = (3_700, 7_400, 11_000, 22_000)


@dataclass
class Vehicle:
    """One car's battery during one session; all energies in Wh, state of charge in percent."""

    capacity_wh: float
    soc: float
    onboard_w: float
    elapsed_s: float = 0.0
    power_w: float = 0.0

    @property
    def full(self) -> bool:
        return self.soc >= 100.0

    def power_at(self, limit_w: float) -> float:
        """Power (W) the car draws now under the charger's limit."""
        if self.full:
            return 0.0
        power = min(limit_w, self.onboard_w)
        if self.soc > TAPER_FROM_SOC:
            share = (self.soc - TAPER_FROM_SOC) / (100.0 - TAPER_FROM_SOC)
            power *= max(TAPER_FLOOR, 1.0 - (1.0 - TAPER_FLOOR) * share)
        ramp = min(1.0, 0.2 + 0.8 * self.elapsed_s / RAMP_S)
        return power * ramp

    def charge(self, seconds: float, limit_w: float) -> float:
        """Charge for `seconds` of simulated time; return the energy delivered (Wh)."""
        delivered = 0.0
        left = max(0.0, seconds)
        while left > 0 and not self.full:
            step = min(left, MAX_STEP_S)
            energy = self.power_at(limit_w) * step / 3600.0
            room = (100.0 - self.soc) / 100.0 * self.capacity_wh
            energy = min(energy, room)
            self.soc = min(100.0, self.soc + energy / self.capacity_wh * 100.0)
            delivered += energy
            self.elapsed_s += step
            left -= step
        self.power_w = self.power_at(limit_w)
        return delivered


def random_vehicle(rng: random.Random, *, capacity_wh: float | None = None,
                   start_soc: float | None = None) -> Vehicle:
    """A car as they arrive at public chargers: 40-100 kWh, 10-60 % full, a common AC limit."""
    return Vehicle(
        capacity_wh=capacity_wh if capacity_wh is not None else rng.uniform(40_000, 100_000),
        soc=start_soc if start_soc is not None else rng.uniform(10.0, 60.0),
        onboard_w=rng.choice(ONBOARD_CHARGERS_W),
    )
