"""The money path in alternating trials: paid → RemoteStart, held still.

One StromApp (dev wallet) runs in this process with its HTTP client and raw chargers on the
same loop (as bench/money_path.py), the whole process pinned to one core. Per round,
`sessions` payments settled at once → RemoteStartTransaction at each charger (p50, p99),
against the central system's bare RemoteStart call to as many idle chargers. (LNURL
callbacks are measured with strom's server in a process of its own: bench/steady_lnurl.py.)

CPU here is this process's (server and client together): the client's share is the same on
both sides of a ratio. Each payment attempt uses chargers booted for it (one session each).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from bench.chargers import RawCharger, boot_all
from bench.figures import percentile
from bench.money_path import (
    CLIENT_LIMITS,
    WAIT,
    Arrivals,
    bench_settings,
    direct_starts,
    paid_starts,
)
from bench.steady import Trial, Watch, measured, process_cpu_seconds
from bench.steady_lnurl import children
from strom.app import StromApp
from strom.gc_keeper import short_gc_pauses

Attempt = Callable[[], Awaitable[tuple[dict[str, float], Watch]]]


async def trials(rounds: int, sessions: int, interleave: Callable[[int], list[str]],
                 retries: int) -> dict[str, list[Trial]]:
    """`rounds` rounds of each side; keys: paid, direct."""
    out: dict[str, list[Trial]] = {"paid": [], "direct": []}
    serial = itertools.count()
    arrivals = Arrivals()
    with tempfile.TemporaryDirectory(prefix="strom-bench-steady-money-") as tmp:
        async with StromApp(bench_settings(), Path(tmp) / "data") as app, short_gc_pauses(), \
                httpx.AsyncClient(timeout=WAIT, limits=CLIENT_LIMITS) as http:
            assert app.services is not None and app.services.central_system is not None
            services = app.services
            central = services.central_system
            booted: list[RawCharger] = []

            async def fleet(prefix: str) -> list[RawCharger]:
                ids = [f"{prefix}-{next(serial)}" for _ in range(sessions)]
                for cp_id in ids:
                    await services.charge_points.add(cp_id, name=cp_id, lat=52.5, lon=13.4)
                chargers = [RawCharger(cp_id, central.url, arrivals) for cp_id in ids]
                booted.extend(chargers)
                await boot_all(chargers, 50)
                return chargers

            # The dev wallet signs in worker processes (strom/lightning/signing.py): started
            # here, so their CPU during each trial counts as the server's.
            await services.wallet.create_invoice(1_000, description="warm-up")
            workers = children(os.getpid())

            def starts(prefix: str,
                       run: Callable[[list[RawCharger]], Awaitable[list[float]]]) -> Attempt:
                async def attempt() -> tuple[dict[str, float], Watch]:
                    chargers = await fleet(prefix)
                    cpu = sum(process_cpu_seconds(pid) for pid in workers)
                    with Watch(["self", *workers]) as watch:
                        ms = await run(chargers)
                    watch.server_cpu_s += sum(process_cpu_seconds(p) for p in workers) - cpu
                    return _latencies(ms, watch, sessions), watch
                return attempt

            async def paid(chargers: list[RawCharger]) -> list[float]:
                return (await paid_starts(app, http, chargers, arrivals))[0]

            attempts: dict[str, Attempt] = {
                "paid": starts("paid", paid),
                "direct": starts("direct", lambda c: direct_starts(central, c, arrivals))}
            try:
                for n in range(rounds):
                    for side in interleave(n):
                        key = "paid" if side == "strom" else "direct"
                        out[key].append(await measured(attempts[key], retries))
            finally:
                for charger in booted:
                    await charger.close()
    return out


def _latencies(ms: list[float], watch: Watch, sessions: int) -> dict[str, float]:
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "cpu_ms": watch.server_cpu_s / sessions * 1000}
