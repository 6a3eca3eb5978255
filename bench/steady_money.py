"""The money path in alternating trials: LNURL callbacks and paid → RemoteStart, held still.

One StromApp (dev wallet) runs in this process with its HTTP client and raw chargers on the
same loop (as bench/money_path.py), the whole process pinned to one core. Per round:

- LNURL callbacks/s and CPU per callback, against a constant answer from a bare Starlette
  route on the same HTTP server class (`money_path.http_floor`);
- `sessions` payments settled at once → RemoteStartTransaction at each charger (p50, p99),
  against the central system's bare RemoteStart call to as many idle chargers.

CPU here is this process's (server and client together): the client's share is the same on
both sides of a ratio. Each payment attempt uses chargers booted for it (one session each).
"""

from __future__ import annotations

import itertools
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
    callback_rate,
    direct_starts,
    http_floor,
    paid_starts,
)
from bench.steady import Trial, Watch, measured
from strom.app import StromApp

Attempt = Callable[[], Awaitable[tuple[dict[str, float], Watch]]]


async def trials(rounds: int, callbacks: int, sessions: int,
                 interleave: Callable[[int], list[str]], retries: int) -> dict[str, list[Trial]]:
    """`rounds` rounds of each side; keys: callbacks, floor, paid, direct."""
    out: dict[str, list[Trial]] = {"callbacks": [], "floor": [], "paid": [], "direct": []}
    serial = itertools.count()
    arrivals = Arrivals()
    with tempfile.TemporaryDirectory(prefix="strom-bench-steady-money-") as tmp:
        async with StromApp(bench_settings(), Path(tmp) / "data") as app, \
                httpx.AsyncClient(timeout=WAIT, limits=CLIENT_LIMITS) as http:
            assert app.services is not None and app.services.central_system is not None
            services = app.services
            central, base = services.central_system, app.settings.public_url
            booted: list[RawCharger] = []

            async def fleet(prefix: str) -> list[RawCharger]:
                ids = [f"{prefix}-{next(serial)}" for _ in range(sessions)]
                for cp_id in ids:
                    await services.charge_points.add(cp_id, name=cp_id, lat=52.5, lon=13.4)
                chargers = [RawCharger(cp_id, central.url, arrivals) for cp_id in ids]
                booted.extend(chargers)
                await boot_all(chargers, 50)
                return chargers

            ids = [c.cp_id for c in await fleet("lnurl")]

            def rate(run: Callable[[], Awaitable[float]]) -> Attempt:
                async def attempt() -> tuple[dict[str, float], Watch]:
                    with Watch(["self"]) as watch:
                        per_s = await run()
                    return {"per_s": per_s,
                            "cpu_ms": watch.server_cpu_s / callbacks * 1000}, watch
                return attempt

            def starts(prefix: str,
                       run: Callable[[list[RawCharger]], Awaitable[list[float]]]) -> Attempt:
                async def attempt() -> tuple[dict[str, float], Watch]:
                    chargers = await fleet(prefix)
                    with Watch(["self"]) as watch:
                        ms = await run(chargers)
                    return _latencies(ms, watch, sessions), watch
                return attempt

            async def paid(chargers: list[RawCharger]) -> list[float]:
                return (await paid_starts(app, http, chargers, arrivals))[0]

            attempts: dict[str, Attempt] = {
                "callbacks": rate(lambda: callback_rate(http, base, ids, callbacks)),
                "floor": rate(lambda: http_floor(http, callbacks)),
                "paid": starts("paid", paid),
                "direct": starts("direct", lambda c: direct_starts(central, c, arrivals))}
            try:
                for n in range(rounds):
                    for ours, theirs in (("callbacks", "floor"), ("paid", "direct")):
                        for side in interleave(n):
                            key = ours if side == "strom" else theirs
                            out[key].append(await measured(attempts[key], retries))
            finally:
                for charger in booted:
                    await charger.close()
    return out


def _latencies(ms: list[float], watch: Watch, sessions: int) -> dict[str, float]:
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "cpu_ms": watch.server_cpu_s / sessions * 1000}
