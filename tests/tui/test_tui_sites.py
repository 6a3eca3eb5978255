"""The operator console's sites screen (key w): a site's limit, use and each session's share."""

from __future__ import annotations

import httpx
from textual.widgets import Static

from strom.app import StromApp
from tests.api.charger import TestCharger
from tests.api.flows import pay_and_charge
from tests.tui.test_tui import SIZE, admin, app, console_for, text, until, with_charger

__all__ = ["admin", "app"]  # the fixtures of the console's tests


async def test_sites_screen_shows_the_shares(app: StromApp, admin: httpx.AsyncClient) -> None:
    console = console_for(app)
    async with console.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        sites = console.screen.query_one("#sites", Static)
        await until(pilot, lambda: "No sites" in text(sites))
    await admin.post("/api/v1/charge-points", json={"id": "cp-1", "lat": 48.1, "lon": 11.5,
                                                    "connectors": 2})
    await admin.put("/api/v1/sites/home", json={"name": "Home", "limit_w": 22_000})
    await admin.put("/api/v1/sites/home/chargers/cp-1", json={})

    async def scenario(charger: TestCharger) -> None:
        await pay_and_charge(admin, charger, "cp-1")
        console = console_for(app)
        async with console.run_test(size=SIZE) as pilot:
            await pilot.press("w")
            sites = console.screen.query_one("#sites", Static)
            await until(pilot, lambda: "cp-1/1" in text(sites))
            shown = text(sites)
            assert "Home  22.0 kW of 22.0 kW" in shown and "accepted" in shown, shown

    await with_charger(app, "cp-1", scenario)
