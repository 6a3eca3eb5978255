"""The money path: LNURL callback → invoice → paid → RemoteStartTransaction at the charger.

A full StromApp (dev wallet, embedded relay and bots) runs in this process with CHARGERS raw
chargers connected over real OCPP; LNURL requests go over HTTP with httpx. The chargers and
the HTTP client share the app's event loop, so their cost is counted too. The app runs with
the GC keeper, as `strom run` serves it: without it the interpreter's full collections of the
growing heap (~140 ms each) stall whole batches of payments now and then.

Baseline: the central system's own RemoteStartTransaction call to an idle charger (no
payment, no session). LNURL callbacks per second are measured with the server in a process
of its own (bench/steady_lnurl.py); `bare_app` is their baseline's route.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.chargers import RawCharger, boot_all
from bench.figures import Figure, percentile
from strom.app import StromApp
from strom.config import Settings
from strom.events import SessionChanged
from strom.gc_keeper import short_gc_pauses
from strom.lightning.dev import DevWallet
from strom.ocpp.central_system import CentralSystem

CHARGERS = 100
AMOUNT_MSAT = 2_000_000
WAIT = 30.0
# Idle connections are dropped well before uvicorn's keep-alive timeout (5 s), or a request may
# go out on a connection the server is closing (RemoteProtocolError).
CLIENT_LIMITS = httpx.Limits(max_connections=50, keepalive_expiry=1.0)


class Arrivals:
    """When each charger saw its RemoteStartTransaction."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.all_in = asyncio.Event()
        self.expected = 0

    def __call__(self, charger: RawCharger, arrived: float) -> None:
        self.at.setdefault(charger.cp_id, arrived)
        if len(self.at) >= self.expected:
            self.all_in.set()

    def reset(self, expected: int) -> None:
        self.at.clear()
        self.all_in.clear()
        self.expected = expected


async def _invoice(http: httpx.AsyncClient, base: str, cp_id: str) -> str:
    """The wallet's two requests: payRequest, then the callback with an amount; returns pr."""
    pay_request = (await http.get(f"{base}/lnurlp/{cp_id}")).json()
    if "callback" not in pay_request:
        raise RuntimeError(f"{cp_id}: no payRequest: {pay_request}")
    answer = (await http.get(pay_request["callback"], params={"amount": AMOUNT_MSAT})).json()
    if "pr" not in answer:
        raise RuntimeError(f"{cp_id}: callback refused: {answer}")
    return str(answer["pr"])


def bare_app() -> Starlette:
    """The HTTP stack alone: a constant LNURL callback answer on `/cb`, from a bare route."""
    body = {"pr": "lnbcrt" + "q" * 400, "routes": [], "successAction": {"tag": "url"}}

    async def answer(_: Request) -> JSONResponse:
        return JSONResponse(body)

    return Starlette(routes=[Route("/cb", answer)])


async def direct_starts(central: CentralSystem, chargers: list[RawCharger],
                         arrivals: Arrivals) -> list[float]:
    """ms from the central system's call to RemoteStart arriving, no payment involved."""
    arrivals.reset(len(chargers))
    sent: dict[str, float] = {}

    async def one(charger: RawCharger) -> None:
        sent[charger.cp_id] = time.perf_counter()
        await central.control.start(charger.cp_id, 1, "direct")

    await asyncio.gather(*(one(c) for c in chargers))
    await asyncio.wait_for(arrivals.all_in.wait(), WAIT)
    return [(arrivals.at[cp] - sent[cp]) * 1000 for cp in sent]


async def paid_starts(app: StromApp, http: httpx.AsyncClient, chargers: list[RawCharger],
                       arrivals: Arrivals) -> tuple[list[float], list[float]]:
    """ms from settling each invoice to RemoteStart at the charger, and to `charging`."""
    assert app.services is not None and isinstance(app.services.wallet, DevWallet)
    wallet, bus = app.services.wallet, app.services.bus
    base = app.settings.public_url
    invoices = await asyncio.gather(*(_invoice(http, base, c.cp_id) for c in chargers))
    arrivals.reset(len(chargers))
    paid: dict[str, float] = {}
    charging: dict[str, float] = {}
    done = asyncio.Event()

    ours = {c.cp_id for c in chargers}  # earlier trials' sessions may change meanwhile

    async def watch(queue: asyncio.Queue[SessionChanged]) -> None:
        while len(charging) < len(chargers):
            event = await queue.get()
            if event.state == "charging" and event.cp_id in ours:
                charging.setdefault(event.cp_id, time.perf_counter())
        done.set()

    async def pay(charger: RawCharger, invoice: str) -> None:
        paid[charger.cp_id] = time.perf_counter()
        await wallet.settle(invoice)

    async with bus.listen(SessionChanged) as queue:
        watcher = asyncio.create_task(watch(queue))
        try:
            await asyncio.gather(*(pay(c, i) for c, i in zip(chargers, invoices, strict=True)))
            await asyncio.wait_for(arrivals.all_in.wait(), WAIT)
            await asyncio.wait_for(done.wait(), WAIT)
        finally:
            watcher.cancel()
    to_start = [(arrivals.at[cp] - paid[cp]) * 1000 for cp in paid]
    to_charging = [(charging[cp] - paid[cp]) * 1000 for cp in paid]
    return to_start, to_charging


def bench_settings() -> Settings:
    """strom on free loopback ports, the LNURL callback rate guard opened wide."""
    # One load generator on loopback stands for many payers: the per-address limit on LNURL
    # callbacks (an abuse guard, not a capacity limit) would measure itself instead.
    return Settings.model_validate({"http": {"port": 0}, "ocpp": {"port": 0},
                                    "relay": {"port": 0},
                                    "lnurl": {"callbacks_per_minute": 1e9,
                                              "callback_burst": 1_000_000}})


async def run(chargers: int = CHARGERS) -> list[Figure]:
    """Measure the money path with `chargers` concurrent sessions."""
    settings = bench_settings()
    arrivals = Arrivals()
    with tempfile.TemporaryDirectory(prefix="strom-bench-money-") as tmp:
        async with StromApp(settings, Path(tmp) / "data") as app, short_gc_pauses(), \
                httpx.AsyncClient(timeout=WAIT, limits=CLIENT_LIMITS) as http:
            assert app.services is not None and app.services.central_system is not None
            central = app.services.central_system
            ids = [f"pay-{n}" for n in range(1, chargers + 1)]
            direct_ids = [f"direct-{n}" for n in range(1, chargers + 1)]
            for cp_id in ids + direct_ids:
                await app.services.charge_points.add(cp_id, name=cp_id, lat=52.52, lon=13.40)
            paying = [RawCharger(cp_id, central.url, arrivals) for cp_id in ids]
            direct = [RawCharger(cp_id, central.url, arrivals) for cp_id in direct_ids]
            try:
                await boot_all(paying + direct, 50)
                direct_ms = await direct_starts(central, direct, arrivals)
                start_ms, charging_ms = await paid_starts(app, http, paying, arrivals)
            finally:
                await asyncio.gather(*(c.close() for c in paying + direct))
    note = f"{chargers} sessions paid at once, one per charger"
    return [
        Figure("money", "paid → RemoteStart at charger, p50", percentile(start_ms, 50), "ms",
               percentile(direct_ms, 50), note + "; baseline: bare RemoteStart call"),
        Figure("money", "paid → RemoteStart at charger, p99", percentile(start_ms, 99), "ms",
               percentile(direct_ms, 99), note + "; baseline: bare RemoteStart call"),
        Figure("money", "paid → session charging, p50", percentile(charging_ms, 50), "ms",
               note=note + "; after the charger's StartTransaction"),
        Figure("money", "paid → session charging, p99", percentile(charging_ms, 99), "ms",
               note=note),
    ]
