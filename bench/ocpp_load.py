"""Open-loop OCPP load: chargers send MeterValues and Heartbeats on a schedule.

Each charger has its own period (chargers / rate) and a random phase; a call that is late
because the previous one has not been answered yet still counts from its scheduled time, so a
slow server shows up in the latencies instead of quietly lowering the offered rate.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from bench.chargers import CallFailed, RawCharger
from bench.figures import percentile

# One Heartbeat per 300 s (strom's default interval) next to one MeterValues per 10 s.
HEARTBEAT_SHARE = (1 / 300) / (1 / 10 + 1 / 300)
NOMINAL_CALLS_PER_CHARGER = 1 / 10 + 1 / 300
P99_LIMIT_MS = 100.0


@dataclass(frozen=True)
class Step:
    """One load level: what was offered, what came back, and how fast."""

    offered: float  # calls/s
    achieved: float  # answers/s
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu_s: float
    seconds: float

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.p99_ms <= P99_LIMIT_MS


async def load_step(chargers: list[RawCharger], rate: float, seconds: float,
                    seed: int = 1) -> Step:
    """Offer `rate` calls/s spread over all chargers for `seconds`; wait for every answer."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    period = len(chargers) / rate
    start = loop.time() + 0.2
    end = start + seconds
    latencies: list[float] = []
    errors = 0

    async def drive(charger: RawCharger, at: float) -> None:
        nonlocal errors
        while at < end:
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if rng.random() < HEARTBEAT_SHARE:
                action, payload = "Heartbeat", {}
            else:
                action, payload = charger.meter_call(1000 + at - start, 7400.0)
            try:
                await charger.call(action, payload)
                latencies.append(loop.time() - at)
            except (CallFailed, ConnectionError, TimeoutError):
                errors += 1
            at += period

    cpu = time.process_time()
    phases = [start + rng.uniform(0, period) for _ in chargers]
    await asyncio.gather(*(drive(c, at) for c, at in zip(chargers, phases, strict=True)
                           if at < end))
    elapsed = max(loop.time() - start, seconds)
    ms = [x * 1000 for x in latencies]
    return Step(offered=rate, achieved=len(latencies) / elapsed,
                p50_ms=percentile(ms, 50) if ms else 0.0,
                p99_ms=percentile(ms, 99) if ms else 0.0, errors=errors,
                client_cpu_s=time.process_time() - cpu, seconds=elapsed)


async def ramp(chargers: list[RawCharger], first: float, factor: float, limit: float,
               seconds: float) -> list[Step]:
    """Raise the offered rate by `factor` per step until p99 exceeds the limit (or `limit`).

    A step that fails is measured once more before the ramp ends: one stray pause (a WAL
    checkpoint, a GC run) in a 7 s step says nothing about the rate.
    """
    steps: list[Step] = []
    rate = first
    retried = False
    while rate <= limit:
        step = await load_step(chargers, rate, seconds, seed=len(steps) + 2)
        steps.append(step)
        if not step.ok:
            if retried:
                break
            retried = True
            continue
        retried = False
        rate *= factor
    return steps


def sustained(steps: list[Step]) -> Step | None:
    """The busiest step whose p99 stayed within the limit."""
    good = [s for s in steps if s.ok]
    return max(good, key=lambda s: s.achieved) if good else None
