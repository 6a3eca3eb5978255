"""OCPP per-message cost, strom against the ocpp library's example central system, held still.

Each trial starts a fresh server process (a copy of one registered store for strom) pinned to
the server core, boots the fleet from this process pinned to the other core, then offers a
fixed rate of MeterValues and Heartbeats for a few seconds. Kept per trial: server CPU per
booted charger, server CPU per 1,000 calls, p50 and p99 latency and the achieved rate.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.chargers import RawCharger, boot_all
from bench.ocpp_load import load_step
from bench.ocpp_server import ServerProcess
from bench.steady import Trial, Watch, measured, per_thousand, pin, process_cpu_seconds

CONCURRENCY = 50
# After the last boot the server may still work for it (strom's bots publish a charger's status
# 0.5 s after its last change): boot CPU is read after this pause, on both sides.
BOOT_SETTLE = 1.5
_COPIES = itertools.count()


@dataclass(frozen=True)
class OcppPlan:
    chargers: int
    rate: float  # calls/s offered over the whole fleet
    seconds: float


async def booted(server_pid: int, chargers: list[RawCharger]) -> float:
    """Boot the fleet (`CONCURRENCY` handshakes in flight); the server's CPU milliseconds per
    charger, read `BOOT_SETTLE` s after the last boot."""
    cpu = process_cpu_seconds(server_pid)
    await boot_all(chargers, CONCURRENCY)
    await asyncio.sleep(BOOT_SETTLE)
    return (process_cpu_seconds(server_pid) - cpu) / len(chargers) * 1000


async def trial(kind: str, store: Path | None, work: Path, ids: list[str], plan: OcppPlan,
                server_core: set[int], retries: int) -> Trial:
    """One server, one boot of the fleet, one load step (re-run while disturbed)."""
    data_dir = None
    if store is not None:
        data_dir = work / f"{kind}-{next(_COPIES)}"
        shutil.copytree(store, data_dir)
    async with ServerProcess(kind, data_dir) as server:
        pin(server.pid, server_core)
        chargers = [RawCharger(cp_id, server.url) for cp_id in ids]
        try:
            boot_cpu_ms = await booted(server.pid, chargers)

            async def attempt() -> tuple[dict[str, float], Watch]:
                with Watch([server.pid, "self"]) as watch:
                    step = await load_step(chargers, plan.rate, plan.seconds)
                calls = round(step.achieved * step.seconds)
                return {"cpu_per_1000": per_thousand(watch.server_cpu_s, calls),
                        "p50_ms": step.p50_ms, "p99_ms": step.p99_ms,
                        "achieved": step.achieved, "errors": float(step.errors),
                        "boot_cpu_ms": boot_cpu_ms}, watch

            return await measured(attempt, retries)
        finally:
            await asyncio.gather(*(c.close() for c in chargers))
