"""Boot and reconnect-storm cost, this checkout against another (or the baseline), held still.

    python -m bench.boot_storm 200                        # strom vs the ocpp example, 3 rounds
    python -m bench.boot_storm 2000 --rounds 1 --storm --against /tmp/main-checkout

Each trial starts a fresh server (a copy of one registered store) pinned to the server core,
boots the fleet from this process pinned to the other, and reads the server's CPU per charger
booted (as `bench.steady_ocpp`); with `--storm` every charger then drops without a close and
reconnects (100 in flight, as `bench.ocpp`): the wall time until all are back and the server's
CPU per charger. Sides alternate, the order flipping each round. `--against DIR` serves the
third side from another checkout of strom (e.g. `git archive main | tar -x -C DIR`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import tempfile
import time
from pathlib import Path

from bench.chargers import RawCharger, boot_all
from bench.ocpp_server import ServerProcess, raise_file_limit, register_chargers
from bench.steady import alternating, cores, pin, process_cpu_seconds
from bench.steady_ocpp import BOOT_SETTLE, booted

STORM_CONCURRENCY = 100  # as bench.ocpp's storm
_COPIES = itertools.count()


async def trial(side: str, store: Path, work: Path, ids: list[str], storm: bool,
                against: Path | None, server_core: set[int]) -> dict[str, float]:
    """One server: boot the fleet (and storm it); its CPU per charger and the storm's time."""
    data_dir = None
    if side != "baseline":
        data_dir = work / f"{side}-{next(_COPIES)}"
        shutil.copytree(store, data_dir)
    checkout = against if side == "against" else None
    kind = "baseline" if side == "baseline" else "strom"
    async with ServerProcess(kind, data_dir, checkout=checkout) as server:
        pin(server.pid, server_core)
        chargers = [RawCharger(cp_id, server.url) for cp_id in ids]
        try:
            out = {"boot_cpu_ms": await booted(server.pid, chargers)}
            if storm:
                cpu, started = process_cpu_seconds(server.pid), time.perf_counter()
                for charger in chargers:
                    charger.abort()
                await asyncio.gather(*(c.close() for c in chargers))
                await boot_all(chargers, STORM_CONCURRENCY)
                out["storm_s"] = time.perf_counter() - started
                await asyncio.sleep(BOOT_SETTLE)
                out["storm_cpu_ms"] = (process_cpu_seconds(server.pid) - cpu) / len(ids) * 1000
            return out
        finally:
            await asyncio.gather(*(c.close() for c in chargers))


async def run(chargers: int, rounds: int, storm: bool, against: Path | None) -> None:
    raise_file_limit()
    server_core, load_core = cores()
    pin("self", load_core)
    sides = ["strom", *(["against"] if against else []), "baseline"]
    ids = [f"bench-{n}" for n in range(1, chargers + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        store, work = Path(tmp) / "store", Path(tmp) / "work"
        await register_chargers(store, ids)
        results = await alternating(sides, rounds, lambda side: trial(
            side, store, work, ids, storm, against, server_core))
    ratios = [s["boot_cpu_ms"] / b["boot_cpu_ms"]
              for s, b in zip(results["strom"], results["baseline"], strict=True)]
    print(f"boot CPU, strom / baseline, per round: {', '.join(f'{r:.2f}' for r in ratios)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("chargers", type=int)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storm", action="store_true", help="then drop and reconnect all")
    parser.add_argument("--against", type=Path, help="another checkout of strom, as a side")
    args = parser.parse_args()
    asyncio.run(run(args.chargers, args.rounds, args.storm, args.against))


if __name__ == "__main__":
    main()
