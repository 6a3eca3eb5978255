"""Public pages and the public JSON API, over real HTTP against a running strom."""

from __future__ import annotations

import asyncio
import json

import httpx

from strom.app import StromApp
from strom.events import ConnectorStatusChanged
from strom.lnurl.codec import lnurl_decode


async def add_cp(app: StromApp, cp_id: str = "cp-web", connectors: int = 2) -> None:
    assert app.services is not None
    await app.services.charge_points.add(cp_id, name="Market Square", lat=48.137, lon=11.575,
                                         num_connectors=connectors)


async def test_public_charge_point_json_follows_the_contract(app: StromApp) -> None:
    await add_cp(app)
    async with httpx.AsyncClient(base_url=app.http_url) as http:
        listing = (await http.get("/api/v1/public/charge-points")).json()
        one = (await http.get("/api/v1/public/charge-points/cp-web")).json()
        missing = await http.get("/api/v1/public/charge-points/nope")
    assert listing == [one]
    assert set(one) >= {"id", "name", "pubkey", "npub", "lud16", "lnurl", "url", "status",
                        "location", "connectors", "tariff"}
    assert one["status"] == "Offline"
    assert one["location"]["geohash"].startswith("u281z")
    assert lnurl_decode(one["lnurl"]) == f"{app.services.settings.public_url}/lnurlp/cp-web"
    assert one["lud16"] == f"cp-web@127.0.0.1:{app.http.port}"
    assert [c["id"] for c in one["connectors"]] == [1, 2]
    assert set(one["tariff"]) >= {"price_msat_per_kwh", "session_fee_msat",
                                  "price_msat_per_minute", "currency", "source", "valid_until"}
    assert missing.status_code == 404


async def test_pages_render(app: StromApp) -> None:
    await add_cp(app)
    async with httpx.AsyncClient(base_url=app.http_url) as http:
        index = await http.get("/")
        filtered = await http.get("/", params={"q": "nothing like this"})
        page = await http.get("/cp/cp-web")
        sticker = await http.get("/cp/cp-web/sticker")
        svg = await http.get("/cp/cp-web/qr.svg")
        css = await http.get("/static/style.css")
        missing = await http.get("/cp/nope")
    assert index.status_code == 200 and "Market Square" in index.text
    assert "Market Square" not in filtered.text and "No charge point matches" in filtered.text
    assert page.status_code == 200
    assert "<svg" in page.text and "Open in wallet" in page.text
    assert 'href="lightning:LNURL1' in page.text
    assert "300 sat per kWh" in page.text
    assert sticker.status_code == 200 and "Scan the code" in sticker.text
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert css.status_code == 200
    assert missing.status_code == 404


async def test_charge_point_events_stream_status_changes(app: StromApp) -> None:
    await add_cp(app)
    assert app.services is not None
    async with httpx.AsyncClient(base_url=app.http_url, timeout=10) as http, \
            http.stream("GET", "/cp/cp-web/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        frames = []
        first = asyncio.Event()

        async def read() -> None:
            data = None
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and data is not None:
                    frames.append(data)
                    first.set()
                    data = None
                    if len(frames) == 2:
                        return

        reader = asyncio.create_task(read())
        await asyncio.wait_for(first.wait(), 5)
        await app.services.charge_points.set_connector_status("cp-web", 1, "Faulted")
        app.services.bus.publish(ConnectorStatusChanged("cp-web", 1, "Faulted"))
        await asyncio.wait_for(reader, 5)
    assert frames[0]["id"] == "cp-web"
    assert frames[1]["connectors"][0]["status"] == "Offline"  # not connected: shown offline


async def test_the_list_streams_every_chargers_changes(app: StromApp) -> None:
    await add_cp(app, "cp-a")
    await add_cp(app, "cp-b")
    assert app.services is not None
    async with httpx.AsyncClient(base_url=app.http_url, timeout=10) as http:
        page = await http.get("/")
        assert 'data-events="/events"' in page.text and 'data-cp="cp-b"' in page.text
    async with httpx.AsyncClient(base_url=app.http_url, timeout=10) as http, \
            http.stream("GET", "/events") as stream:
        await asyncio.sleep(0.2)  # the stream is listening
        await app.services.charge_points.set_connector_status("cp-b", 1, "Faulted")
        app.services.bus.publish(ConnectorStatusChanged("cp-b", 1, "Faulted"))
        async with asyncio.timeout(5):
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    break
    assert data["id"] == "cp-b" and "availability" in data
