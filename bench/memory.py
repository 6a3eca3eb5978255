"""Memory per connected charger and GC pauses, strom served as `strom run` serves it (issue 23).

    python -m bench.memory [--chargers 2000] [--seconds 20]

One strom server process on uvloop with `strom run`'s GC keeper (`bench.ocpp_server
strom-uvloop`), pinned to one core, the chargers (`bench.chargers`) on the other: boot the
fleet, read the server's RSS per charger, offer the nominal load (1 MeterValues/10 s + 1
Heartbeat/300 s per charger) and read the longest GC pause, in wall and in CPU time (on a
shared machine wall time is mostly the scheduler's), then time one full collection: what the
collector walks at this fleet size. Prints one JSON object. Run it on two commits, alternating,
for a before → after (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.chargers import RawCharger, boot_all
from bench.ocpp import quiet_gc
from bench.ocpp_load import NOMINAL_CALLS_PER_CHARGER, load_step
from bench.ocpp_server import ServerProcess, raise_file_limit, register_chargers
from bench.steady import cores, pin

CONCURRENCY = 50
SETTLE = 2.0  # seconds after the last boot (the bots publish statuses 0.5 s after a change)


@dataclass(frozen=True)
class Memory:
    """What one run measured."""

    chargers: int
    rss_kib_per_charger: float  # booted, settled
    rss_kib_per_charger_loaded: float  # after the nominal load
    boot_gc_longest_cpu_ms: float
    nominal_calls_per_s: float
    nominal_p99_ms: float
    nominal_gc_longest_ms: float
    nominal_gc_longest_cpu_ms: float
    nominal_full_collections: int
    full_collection_cpu_ms: float


async def measure(chargers: int, seconds: float) -> Memory:
    """Boot `chargers` at a fresh strom, load them nominally for `seconds`, read the server."""
    raise_file_limit()
    server_core, load_core = cores()
    pin("self", load_core)
    ids = [f"bench-{n}" for n in range(1, chargers + 1)]
    with tempfile.TemporaryDirectory(prefix="strom-bench-memory-") as tmp, quiet_gc():
        await register_chargers(Path(tmp), ids)
        async with ServerProcess("strom-uvloop", Path(tmp)) as server:
            pin(server.pid, server_core)
            fleet = [RawCharger(cp_id, server.url) for cp_id in ids]
            try:
                start = await server.stats()
                await boot_all(fleet, CONCURRENCY)
                await asyncio.sleep(SETTLE)
                booted = await server.stats()
                gc.freeze()  # the fleet's objects: this process's collector leaves them be
                step = await load_step(fleet, chargers * NOMINAL_CALLS_PER_CHARGER, seconds)
                loaded = await server.stats()
                full = await server.collect()
            finally:
                await asyncio.gather(*(c.close() for c in fleet))
    return Memory(
        chargers=chargers,
        rss_kib_per_charger=(booted["rss_kib"] - start["rss_kib"]) / chargers,
        rss_kib_per_charger_loaded=(loaded["rss_kib"] - start["rss_kib"]) / chargers,
        boot_gc_longest_cpu_ms=booted["gc_longest_cpu_ms"],
        nominal_calls_per_s=step.achieved, nominal_p99_ms=step.p99_ms,
        nominal_gc_longest_ms=loaded["gc_longest_ms"],
        nominal_gc_longest_cpu_ms=loaded["gc_longest_cpu_ms"],
        nominal_full_collections=int(loaded["gc_full"]), full_collection_cpu_ms=full)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chargers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(asdict(asyncio.run(measure(args.chargers, args.seconds))), indent=1))


if __name__ == "__main__":
    main()
