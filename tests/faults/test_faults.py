"""Faults at the edges, each while strom keeps serving: the Lightning node goes away and comes
back, the nostr relay restarts. (The charger losing its network mid-session is in
tests/money/test_charger_offline.py, strom's own crash in tests/e2e/test_crash_*.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import bolt11
import httpx
import pytest
from nostr_sdk import PublicKey, UnwrappedGift, nip17_make_private_msg, uniffi_set_event_loop

from relay import Relay
from strom.app import StromApp
from strom.simulator.charge_point import SimulatedChargePoint
from tests.conftest import free_settings
from tests.doubles.fake_lnd import FakeLnd
from tests.e2e.processes import free_port
from tests.money.conftest import CP
from tests.nostr.conftest import Driver, register
from tests.polling import eventually


async def _charger(app: StromApp) -> SimulatedChargePoint:
    await app.services.charge_points.add(CP, name="Faulty", lat=1, lon=2, num_connectors=2)
    charger = SimulatedChargePoint(CP, app.services.central_system.url, connectors=2,
                                   meter_interval=0.2, speed=60.0)
    await charger.start()
    await eventually(lambda: app.services.charge_points.get(CP),
                     lambda cp: cp is not None and cp.status == "Available")
    return charger


async def test_lightning_node_down_and_back(data_dir: Path) -> None:
    node = FakeLnd()
    await node.start()
    settings = free_settings(lightning={"backend": "lnd",
                                        "lnd": {"url": node.url, "macaroon_hex": node.macaroon}})
    async with StromApp(settings, data_dir) as app, \
            httpx.AsyncClient(base_url=app.http_url, timeout=20) as http:
        charger = await _charger(app)
        callback = f"/lnurlp/{CP}/callback"
        assert "pr" in (await http.get(callback, params={"amount": 1_000_000})).json()

        await node.drop()
        down = (await http.get(callback, params={"amount": 1_000_000})).json()
        assert down["status"] == "ERROR" and "temporarily unavailable" in down["reason"]
        health = await eventually(lambda: http.get("/healthz"),
                                  lambda r: r.json()["status"] == "degraded")
        assert health.json()["checks"]["lightning"]["reachable"] is False

        await node.restart()
        answer = await eventually(lambda: http.get(callback, params={"amount": 1_000_000}),
                                  lambda r: "pr" in r.json(), seconds=30)
        invoice = answer.json()
        payment_hash = bolt11.decode(invoice["pr"]).payment_hash
        node.settle(payment_hash)
        session_url = invoice["successAction"]["url"]
        charging = await eventually(
            lambda: http.get(session_url, headers={"Accept": "application/json"}),
            lambda r: r.json()["state"] == "charging", seconds=30)
        assert charging.json()["paid_msat"] == 1_000_000
        await charger.close()
    await node.close()


@pytest.mark.timeout(90)
async def test_relay_down_and_back(data_dir: Path, tmp_path: Path) -> None:
    uniffi_set_event_loop(asyncio.get_running_loop())
    port = free_port()
    relay = Relay(tmp_path / "relay.sqlite3", "127.0.0.1", port)
    await relay.start()
    cp_keys = await register(data_dir)
    settings = free_settings(relay={"embedded": False}, nostr={"relays": [relay.url]})
    async with StromApp(settings, data_dir):
        await relay.close()
        await asyncio.sleep(1.0)
        relay = Relay(tmp_path / "relay.sqlite3", "127.0.0.1", port)
        await relay.start()
        driver = Driver(relay.url)
        await driver.start()
        try:
            cp_pub = PublicKey.parse(cp_keys.public_key().to_hex())

            async def ask() -> str | None:
                await driver.client.publish(nip17_make_private_msg(driver.keys, cp_pub, "price"))
                try:
                    event = await asyncio.wait_for(driver.next(1059), 3)
                except TimeoutError:
                    return None
                return UnwrappedGift.from_gift_wrap(driver.keys, event).rumor().content()

            # The bots reconnect by themselves; once they have, the question is answered.
            answer = await eventually(ask, lambda text: text is not None, seconds=60)
            assert "sat per kWh" in answer
        finally:
            await driver.client.close()
    await relay.close()
