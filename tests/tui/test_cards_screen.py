"""The console's Cards screen (m) with Textual's pilot, against a real strom and a charger
with a local list: register a card, top up its account, watch the list reach the charger,
remove the card."""

from __future__ import annotations

import httpx
from textual.widgets import DataTable, Static

from strom.app import StromApp
from tests.api.charger import running_charger
from tests.cards.charger import CardCharger
from tests.tui.test_tui import SIZE, Recorder, admin, app, console_for, fill, rows, text, until
from tui.screens.cards import CardsScreen

__all__ = ["admin", "app"]  # the fixtures this module uses


async def test_cards_screen_adds_tops_up_and_removes(app: StromApp,
                                                     admin: httpx.AsyncClient) -> None:
    assert app.services.central_system is not None
    console = console_for(app)
    seen = Recorder(console)
    async with running_charger(app.services.central_system.url, "cp-1",
                               charger_class=CardCharger) as charger, \
            console.run_test(size=SIZE) as pilot:
        await pilot.press("s")  # from any screen, also one with keys of its own
        await pilot.press("m")
        await until(pilot, lambda: isinstance(console.screen, CardsScreen))
        screen = console.screen
        table = screen.query_one(DataTable)
        accounts = screen.query_one("#accounts", Static)
        await until(pilot, lambda: "Local lists (version 0)" in text(accounts))

        await pilot.press("t")
        await fill(pilot, {"account": "fleet", "amount": "2,000"})
        await until(pilot, lambda: "2,000 sat" in text(accounts))
        await pilot.press("a")
        await fill(pilot, {"id_tag": "VAN-1", "account": "fleet", "label": "van one"})
        await until(pilot, lambda: table.row_count == 1)
        assert rows(table) == [["VAN-1", "account", "fleet", "Accepted", "van one"]]
        await until(pilot, lambda: charger.local_list == {"VAN-1": "Accepted"})
        await pilot.press("r")
        await until(pilot, lambda: "cp-1" in text(accounts) and "up to date" in text(accounts))

        await pilot.press("a")
        await fill(pilot, {"id_tag": "X" * 21})
        await until(pilot, lambda: seen.saw("at most 20"))
        await pilot.press("x")
        await until(pilot, lambda: table.row_count == 0)
        assert seen.saw("card VAN-1 removed")
        await until(pilot, lambda: charger.local_list == {})
