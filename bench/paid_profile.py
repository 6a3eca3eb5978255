"""Profile the paid path: N sessions paid at once → RemoteStart, store hops counted.

    .venv/bin/python -m bench.paid_profile 100            # latencies and hops per session
    .venv/bin/python -m bench.paid_profile 100 --profile  # and cProfile of the loop's thread

One StromApp in this process pinned to one core, as `bench.money_path`: N chargers get a bare
RemoteStart (the baseline), N others a session each, paid at once. Counts every hop to the
store's thread (aiosqlite's `_execute`) from the first settle to the last RemoteStart and to
the last session charging.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiosqlite.core
import httpx

from bench import money_path
from bench.chargers import RawCharger, boot_all
from bench.figures import percentile
from bench.steady import Watch
from strom.app import StromApp
from strom.gc_keeper import short_gc_pauses


class Hops:
    """Counts calls into aiosqlite's thread while installed."""

    def __init__(self) -> None:
        self.count = 0
        self._real = aiosqlite.core.Connection._execute

    def __enter__(self) -> Hops:
        hops, real = self, self._real

        async def counted(conn: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            hops.count += 1
            return await real(conn, fn, *args, **kwargs)

        aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        aiosqlite.core.Connection._execute = self._real  # type: ignore[method-assign]


async def main(n: int, profile: bool) -> None:
    os.sched_setaffinity(0, {0})
    arrivals = money_path.Arrivals()
    with tempfile.TemporaryDirectory(prefix="strom-bench-paid-") as tmp, Hops() as hops:
        async with StromApp(money_path.bench_settings(), Path(tmp) / "data") as app, short_gc_pauses(), \
                httpx.AsyncClient(timeout=money_path.WAIT,
                                  limits=money_path.CLIENT_LIMITS) as http:
            services = app.services
            assert services is not None and services.central_system is not None
            central = services.central_system
            fleets = {}
            for prefix in ("pay", "direct"):
                ids = [f"{prefix}-{k}" for k in range(n)]
                for cp_id in ids:
                    await services.charge_points.add(cp_id, name=cp_id, lat=52.5, lon=13.4)
                fleets[prefix] = [RawCharger(cp_id, central.url, arrivals) for cp_id in ids]
            try:
                await boot_all(fleets["pay"] + fleets["direct"], 50)
                direct = await money_path.direct_starts(central, fleets["direct"], arrivals)
                profiler, first, settling = cProfile.Profile(), {}, asyncio.Event()
                settle = services.wallet.settle

                async def counted_settle(invoice: str) -> Any:
                    if not first:
                        first["hops"] = hops.count
                        settling.set()
                        if profile:
                            profiler.enable()
                    return await settle(invoice)

                async def at_start() -> int:
                    await settling.wait()  # the paid round's own arrivals, not the bare one's
                    await arrivals.all_in.wait()
                    return hops.count - first["hops"]

                services.wallet.settle = counted_settle  # type: ignore[method-assign]
                to_start = asyncio.ensure_future(at_start())
                with Watch(["self"]) as watch:
                    started, charging = await money_path.paid_starts(app, http, fleets["pay"],
                                                                     arrivals)
                profiler.disable()
                all_hops = hops.count - first["hops"]
            finally:
                await asyncio.gather(*(c.close() for c in fleets["pay"] + fleets["direct"]))
    print(f"{n} paid at once → RemoteStart: p50 {percentile(started, 50):.1f} ms,"
          f" p99 {percentile(started, 99):.1f} ms; bare RemoteStart p50"
          f" {percentile(direct, 50):.1f} ms, p99 {percentile(direct, 99):.1f} ms;"
          f" → charging p99 {percentile(charging, 99):.1f} ms")
    print(f"store hops per session: {await to_start / n:.1f} to all RemoteStarts,"
          f" {all_hops / n:.1f} to all charging; CPU per paid session (with its invoice)"
          f" {watch.server_cpu_s / n * 1000:.2f} ms")
    if profile:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    asyncio.run(main(int(next((a for a in sys.argv[1:] if a.isdigit()), "100")),
                     "--profile" in sys.argv))
