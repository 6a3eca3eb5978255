"""OCPP 2.0.1 TransactionEvent cost (the call a 2.0.1 charger sends all day while a car
charges), this checkout against another, held still.

    python -m bench.transaction_events --against DIR      # DIR: git archive REV | tar -x -C DIR
    python -m bench.transaction_events --chargers 200 --rate 400 --seconds 5 --rounds 3

Each trial starts a fresh server (a copy of one registered store) pinned to the server core;
the fleet, from this process on the other core, boots on OCPP 2.0.1, starts one transaction
per charger (TransactionEvent Started with an idToken and a reading), then sends Updated events
at a fixed rate. Kept: the server's CPU per TransactionEvent (from /proc, as
`bench.steady_ocpp`), p50 and p99. Sides alternate, the order flipping each round.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import shutil
import tempfile
from pathlib import Path

from bench.chargers import OCPP201, RawCharger, transaction_event
from bench.figures import percentile
from bench.ocpp_server import ServerProcess, raise_file_limit, register_chargers
from bench.steady import alternating, cores, pin, process_cpu_seconds
from bench.steady_ocpp import BOOT_SETTLE, booted

_COPIES = itertools.count()


async def updates(chargers: list[RawCharger], rate: float, seconds: float) -> list[float]:
    """Every charger sends Updated events on its own period (random phase); latencies in ms."""
    loop = asyncio.get_running_loop()
    period, rng = len(chargers) / rate, random.Random(1)
    start = loop.time() + 0.1
    end = start + seconds
    latencies: list[float] = []

    async def drive(charger: RawCharger, at: float) -> None:
        seq_no = 1
        while at < end:
            if (delay := at - loop.time()) > 0:
                await asyncio.sleep(delay)
            await charger.call("TransactionEvent", transaction_event(
                "Updated", seq_no, f"tx-{charger.cp_id}", 1000.0 + 10 * seq_no))
            latencies.append((loop.time() - at) * 1000)
            seq_no, at = seq_no + 1, at + period

    await asyncio.gather(*(drive(c, start + rng.uniform(0, period)) for c in chargers))
    return latencies


async def trial(checkout: Path | None, store: Path, work: Path, ids: list[str], rate: float,
                seconds: float, server_core: set[int]) -> dict[str, float]:
    """One server: boot, one transaction per charger, Updated events; CPU per event."""
    data_dir = work / f"strom-{next(_COPIES)}"
    shutil.copytree(store, data_dir)
    async with ServerProcess("strom", data_dir, checkout=checkout) as server:
        pin(server.pid, server_core)
        chargers = [RawCharger(cp_id, server.url, protocol=OCPP201) for cp_id in ids]
        try:
            await booted(server.pid, chargers)
            await asyncio.gather(*(c.call("TransactionEvent", transaction_event(
                "Started", 0, f"tx-{c.cp_id}", 1000.0,
                idToken={"idToken": f"tag-{c.cp_id}", "type": "ISO14443"})) for c in chargers))
            await asyncio.sleep(BOOT_SETTLE)
            cpu = process_cpu_seconds(server.pid)
            latencies = await updates(chargers, rate, seconds)
            used = process_cpu_seconds(server.pid) - cpu
            return {"cpu_us_per_event": used / len(latencies) * 1e6,
                    "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}
        finally:
            await asyncio.gather(*(c.close() for c in chargers))


async def run(chargers: int, rate: float, seconds: float, rounds: int,
              against: Path | None) -> None:
    raise_file_limit()
    server_core, load_core = cores()
    pin("self", load_core)
    sides: dict[str, Path | None] = {"this": None, **({"against": against} if against else {})}
    ids = [f"bench-{n}" for n in range(1, chargers + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        store, work = Path(tmp) / "store", Path(tmp) / "work"
        await register_chargers(store, ids)
        await alternating(list(sides), rounds, lambda side: trial(
            sides[side], store, work, ids, rate, seconds, server_core))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=400.0, help="events/s over the fleet")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout of strom, as a side")
    args = parser.parse_args()
    asyncio.run(run(args.chargers, args.rate, args.seconds, args.rounds, args.against))


if __name__ == "__main__":
    main()
