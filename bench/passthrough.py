"""Passthrough: the latency strom adds to a charger's call on its way to the charger's backend.

N raw chargers (bench/chargers.py) send Heartbeats to a backend that answers at once (a raw
websocket server, so the backend itself costs next to nothing): first straight to it (the
baseline), then through strom's central system with every charger's `upstream` set to it.
The figures are the p50/p99 of one call's round trip through strom and the added latency
(through strom minus direct). Everything runs in this process on one event loop (chargers,
strom and the backend share it), so the figures are an upper bound for strom on its own core.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import tempfile
import time
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.chargers import RawCharger, boot_all
from bench.figures import Figure, percentile
from strom.config import OcppSettings, PassthroughSettings
from strom.events import EventBus
from strom.ocpp.central_system import CentralSystem
from strom.passthrough.config import UpstreamConfig
from strom.passthrough.connection import Passthrough
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.event_log import EventLogRepository
from strom.store.transactions import TransactionRepository

CHARGERS = 1000
CALLS_PER_CHARGER = 3
SPACING = 10.0  # seconds between one charger's calls, jittered: 100 calls/s in all
CONCURRENCY = 100


async def _backend(ws: ServerConnection) -> None:
    """Answers every CALL at once: a backend that costs nothing."""
    with contextlib.suppress(ConnectionClosed):
        await _answer_all(ws)


async def _answer_all(ws: ServerConnection) -> None:
    async for raw in ws:
        message = json.loads(raw)
        if message[0] != 2:
            continue
        payload: dict[str, object] = {}
        if message[2] == "BootNotification":
            payload = {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z",
                       "interval": 300}
        elif message[2] == "Heartbeat":
            payload = {"currentTime": "2026-01-01T00:00:00Z"}
        await ws.send(json.dumps([3, message[1], payload]))


async def _latencies(base_url: str, count: int, calls: int, spacing: float) -> list[float]:
    """Boot `count` chargers at `base_url`, then time their Heartbeats (ms)."""
    chargers = [RawCharger(f"pt-{n}", base_url) for n in range(count)]
    await boot_all(chargers, CONCURRENCY)
    times: list[float] = []

    async def beat(charger: RawCharger) -> None:
        await asyncio.sleep(random.uniform(0, spacing))
        for _ in range(calls):
            started = time.perf_counter()
            await charger.call("Heartbeat", {})
            times.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(spacing * random.uniform(0.5, 1.5))

    try:
        await asyncio.gather(*(beat(c) for c in chargers))
    finally:
        await asyncio.gather(*(c.close() for c in chargers))
    return times


async def run(count: int = CHARGERS, calls: int = CALLS_PER_CHARGER,
              spacing: float = SPACING) -> list[Figure]:
    """Direct, then through strom; figures in ms."""
    backend = await serve(_backend, "127.0.0.1", 0, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                          compression=None)
    port = int(next(iter(backend.sockets)).getsockname()[1])
    backend_url = f"ws://127.0.0.1:{port}/ocpp"
    try:
        direct = await _latencies(backend_url, count, calls, spacing)
        with tempfile.TemporaryDirectory() as tmp:
            db = await Database.open(Path(tmp) / "strom.sqlite3")
            bus = EventBus()
            charge_points = ChargePointRepository(db)
            for n in range(count):
                cp_id = f"pt-{n}"
                await charge_points.add(cp_id, name=cp_id, lat=0.0, lon=0.0)
                await charge_points.update(cp_id, upstream=UpstreamConfig(
                    f"{backend_url}/{cp_id}", lightning=False).to_json())
            central = CentralSystem(
                OcppSettings(port=0, rate_limit_per_second=100, meter_sample_interval=0),
                charge_points, TransactionRepository(db), EventLogRepository(db), bus)
            central.connection_factory = Passthrough(
                PassthroughSettings(), outbound=None, max_message_bytes=65536)
            await central.start()
            try:
                through = await _latencies(f"ws://127.0.0.1:{central.port}/ocpp", count, calls,
                                           spacing)
            finally:
                await central.close()
                await bus.close()
                await db.close()
    finally:
        backend.close()
        await backend.wait_closed()
    note = (f"{count} passthrough chargers, {calls} Heartbeats each about every {spacing:g} s; "
            "chargers, strom and backend on one loop")
    p50, p99 = percentile(through, 50), percentile(through, 99)
    d50, d99 = percentile(direct, 50), percentile(direct, 99)
    return [
        Figure("passthru", "forwarded call p50 through strom", p50, "ms", d50, note),
        Figure("passthru", "forwarded call p99 through strom", p99, "ms", d99, note),
        Figure("passthru", "added latency p50", p50 - d50, "ms", None, note),
        Figure("passthru", "added latency p99", p99 - d99, "ms", None, note),
    ]


if __name__ == "__main__":
    for figure in asyncio.run(run()):
        print(f"{figure.name:<40} {figure.value:8.2f} {figure.unit}  (direct {figure.baseline})")
