"""Bad numbers stop at the edge (issue 17, defect 4).

A charging charger sends SoC "inf" and energy "NaN", "1e400" and "abc" over a real OCPP
websocket, while another charger's readings are queued in the same batches. Afterwards every
JSON answer and SSE frame about the session is valid JSON (200, no `Infinity`), nothing bad was
stored or billed, and the other charger lost none of its 20 readings.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ocpp.v16 import call

from strom.app import StromApp
from strom.timeutil import iso
from tests.api.charger import running_charger
from tests.conftest import free_settings
from tests.money.conftest import CP, World

OTHER = "cp-other"
BAD = [("SoC", "inf", "Percent"), ("Energy.Active.Import.Register", "NaN", "Wh"),
       ("Energy.Active.Import.Register", "1e400", "Wh"), ("Energy.Active.Import.Register",
                                                          "abc", "Wh"),
       ("SoC", "-Infinity", "Percent"), ("Power.Active.Import", "5e9", "W")]


def strict(text: str) -> Any:
    """json.loads that refuses NaN/Infinity, as browsers' JSON.parse does."""
    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
async def strom(data_dir: Path) -> AsyncIterator[StromApp]:
    async with StromApp(free_settings(), data_dir) as app:
        for cp_id in (CP, OTHER):
            await app.services.charge_points.add(cp_id, name=cp_id, lat=50.1, lon=8.7,
                                                 num_connectors=1)
        yield app


async def first_sse_frame(http: httpx.AsyncClient, path: str) -> str:
    async with http.stream("GET", path) as answer:
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if line.startswith("data: "):
                return line.removeprefix("data: ")
    raise AssertionError("no SSE frame")


async def test_bad_numbers_are_refused_and_cost_no_one_anything(strom: StromApp) -> None:
    url = strom.services.central_system.url
    async with running_charger(url, CP, connectors=1) as charger, \
            running_charger(url, OTHER, connectors=1) as other, \
            httpx.AsyncClient(base_url=strom.http_url, timeout=30) as http:
        world = World(strom, None, http)  # type: ignore[arg-type]
        session = await world.pay_to_charge(50_000_000)
        charging = await world.session_until(session["url"], lambda s: s["state"] == "charging")
        await charger.meter(1, 100.0, 7000.0)
        await world.session_until(session["url"], lambda s: s["energy_wh"] == 100.0)
        tx = charger.transactions[1]

        def bad(i: int) -> call.MeterValues:
            measurand, value, unit = BAD[i % len(BAD)]
            return call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                {"timestamp": iso(), "sampled_value": [
                    {"value": value, "measurand": measurand, "unit": unit}]}])

        def good(i: int) -> call.MeterValues:
            return call.MeterValues(connector_id=1, meter_value=[
                {"timestamp": iso(), "sampled_value": [
                    {"value": str(1000 + i), "measurand": "Energy.Active.Import.Register"}]}])

        # Both chargers' rows land in the same batch commits.
        for i in range(20):
            await asyncio.gather(charger.call(bad(i)), other.call(good(i)))
        await strom.services.db.flushed()
        stored = await strom.services.db.fetchall(
            "SELECT value FROM meter_values WHERE cp_id = ? ORDER BY id", (OTHER,))
        assert [r["value"] for r in stored] == [1000.0 + i for i in range(20)]
        mine = await strom.services.db.fetchall(
            "SELECT measurand, value FROM meter_values WHERE cp_id = ?", (CP,))
        assert [(r["measurand"], r["value"]) for r in mine] == [
            ("Energy.Active.Import.Register", 100.0), ("Power.Active.Import", 7000.0)]

        headers = {"Accept": "application/json"}
        for path, auth in [(session["url"], headers), ("/api/v1/sessions", world.admin),
                           (f"/api/v1/sessions/{charging['id']}", world.admin)]:
            answer = await http.get(path, headers=auth)
            assert answer.status_code == 200, answer.text
            strict(answer.text)
        now = await world.session(session["url"])
        assert now["energy_wh"] == 100.0 and now["soc_percent"] is None
        assert now["state"] == "charging"
        token = session["url"].rsplit("/", 1)[1]
        assert strict(await first_sse_frame(http, f"/s/{token}/events"))["soc_percent"] is None

        # A value stored before strom checked (an old database) is answered as null.
        await strom.services.db.execute("UPDATE sessions SET soc_percent = ? WHERE id = ?",
                                        (float("inf"), charging["id"]))
        for path, auth in [(session["url"], headers), ("/api/v1/sessions", world.admin),
                           (f"/api/v1/sessions/{charging['id']}", world.admin)]:
            answer = await http.get(path, headers=auth)
            assert answer.status_code == 200, answer.text
            strict(answer.text)
        assert strict(await first_sse_frame(http, f"/s/{token}/events"))["soc_percent"] is None
        assert (await world.session(session["url"]))["soc_percent"] is None
        await world.ledger_ok()
