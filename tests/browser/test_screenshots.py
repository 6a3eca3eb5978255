"""Screenshots of the public pages at phone and desktop width, for the README.

Always runs (into a temporary directory, checking each picture); with
`STROM_SCREENSHOTS=docs/screenshots` it writes the committed PNGs there instead:

    STROM_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest -q tests/browser/test_screenshots.py
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser

from strom.app import StromApp
from strom.keys import ensure_cp_key
from strom.paths import admin_token_path
from strom.simulator.charge_point import SimulatedChargePoint
from tests.browser.tabs import DESKTOP, PHONE, Tabs
from tests.conftest import free_settings
from tests.polling import eventually

PUBLIC_URL = "https://charge.example.org"  # what a real deployment shows in its links
CHARGERS = [("marktplatz-1", "Marktplatz, Freiburg", 47.99590, 7.85222, 2),
            ("alte-muehle", "Alte Mühle inn", 47.98810, 7.83390, 1),
            ("hafen-3", "Rheinhafen car park", 47.97120, 7.80150, 1)]


@dataclass
class Showroom:
    app: StromApp
    http: httpx.AsyncClient

    async def pay(self, cp_id: str, amount_msat: int) -> str:
        """A wallet paying the charger's LNURL; returns the session page's path."""
        local = lambda url: url.replace(PUBLIC_URL, "")  # noqa: E731  (links carry PUBLIC_URL)
        offer = (await self.http.get(f"/lnurlp/{cp_id}")).json()
        invoice = (await self.http.get(local(offer["callback"]),
                                       params={"amount": amount_msat})).json()
        token = admin_token_path(self.app.data_dir).read_text().strip()
        paid = await self.http.post("/api/v1/dev/pay", json={"bolt11": invoice["pr"]},
                                    headers={"Authorization": f"Bearer {token}"})
        assert paid.json()["settled"], paid.text
        return local(invoice["successAction"]["url"])


@pytest.fixture
async def showroom(data_dir: Path) -> AsyncIterator[Showroom]:
    settings = free_settings(http={"public_url": PUBLIC_URL})
    async with StromApp(settings, data_dir) as app:
        svc = app.services
        assert svc is not None and svc.central_system is not None and svc.keyring is not None
        chargers = []
        for cp_id, name, lat, lon, connectors in CHARGERS:
            await svc.charge_points.add(cp_id, name=name, lat=lat, lon=lon,
                                        num_connectors=connectors)
            ensure_cp_key(svc.keyring.path, cp_id)
        for cp_id, *_, connectors in CHARGERS[:2]:  # the harbour stays offline
            charger = SimulatedChargePoint(cp_id, svc.central_system.url, connectors=connectors,
                                           meter_interval=0.2, speed=120.0, battery_wh=60_000,
                                           start_soc=35.0, seed=3)
            await charger.start()
            chargers.append(charger)
            await eventually(lambda cp_id=cp_id: svc.charge_points.get(cp_id),
                             lambda cp: cp is not None and cp.status == "Available")
        async with httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
            yield Showroom(app, http)
        for charger in chargers:
            await charger.close()


async def test_screenshots_at_phone_and_desktop_width(showroom: Showroom, browser: Browser,
                                                      tmp_path: Path) -> None:
    out = Path(os.environ.get("STROM_SCREENSHOTS") or tmp_path)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    session_path = await showroom.pay("marktplatz-1", 20_000_000)
    tabs = Tabs(browser, showroom.app.http_url)
    try:
        for width_name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            tab = await tabs.open(viewport)
            pages = {"index": "/", "charger": "/cp/marktplatz-1", "session": session_path,
                     "sticker": "/cp/marktplatz-1/sticker"}
            for name, path in pages.items():
                await tab.goto(path)
                if name == "session":  # a session well under way, as a driver sees it
                    await tab.page.wait_for_function(
                        "() => parseFloat(document.getElementById('energy').textContent) >= 0.5"
                        " && document.getElementById('elapsed').textContent !== '–'")
                shot = out / f"{name}-{width_name}.png"
                await tab.page.screenshot(path=shot, full_page=True)
                with Image.open(io.BytesIO(shot.read_bytes())) as picture:
                    assert picture.width == viewport["width"], shot
                    assert picture.height >= viewport["height"], shot
            assert tab.outside() == []
    finally:
        await tabs.close()
    assert len(await asyncio.to_thread(lambda: list(out.glob("*.png")))) >= 8
