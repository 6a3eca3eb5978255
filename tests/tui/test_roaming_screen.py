"""The console's Roaming screen (R) with Textual's pilot, against a real strom: issue a token A
for an eMSP (shown once, and it opens strom's OCPI versions), see the party pending, remove
it (the token no longer opens anything)."""

from __future__ import annotations

import re

import httpx
from textual.widgets import DataTable, Static

from strom.app import StromApp
from strom.ocpi.tokens import header_value
from tests.tui.test_tui import SIZE, Recorder, admin, app, console_for, fill, rows, until
from tui.forms import MessageScreen
from tui.screens.roaming import RoamingScreen

__all__ = ["admin", "app"]  # the fixtures this module uses


async def test_roaming_screen_issues_token_a_and_removes_the_party(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    console = console_for(app)
    seen = Recorder(console)
    async with console.run_test(size=SIZE) as pilot:
        await pilot.press("k")  # from a screen with keys of its own
        await pilot.press("R")
        await until(pilot, lambda: isinstance(console.screen, RoamingScreen))
        screen = console.screen
        table = screen.query_one(DataTable)
        await pilot.press("x")
        await until(pilot, lambda: seen.saw("no party selected"))

        await pilot.press("a")
        await fill(pilot, {"name": "Fleet eMSP"})
        await until(pilot, lambda: isinstance(console.screen, MessageScreen))
        shown = str(console.screen.query_one(".message", Static).render())
        token_a = re.search(r"token A:\s+(\S+)", shown)
        assert token_a is not None and f"{app.http_url}/ocpi/versions" in shown, shown
        await pilot.press("escape")
        await until(pilot, lambda: table.row_count == 1)
        assert rows(table) == [["1", "Fleet eMSP", "pending", "-", "-"]]
        headers = {"Authorization": header_value(token_a.group(1))}
        versions = await admin.get("/ocpi/versions", headers=headers)
        assert versions.json()["status_code"] == 1000

        await pilot.press("x")
        await until(pilot, lambda: table.row_count == 1 and rows(table)[0][2] == "unregistered")
        assert seen.saw("party 1 removed")
        assert (await admin.get("/ocpi/versions", headers=headers)).status_code == 401
