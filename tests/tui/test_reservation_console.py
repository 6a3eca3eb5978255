"""The operator cancels a paid reservation from the console (key `v` on a charger): the
command goes through the admin API and OCPP CancelReservation to the library's charger, and
the payer's fee becomes refundable (issue 21)."""

from __future__ import annotations

from pathlib import Path

import httpx
from textual.widgets import DataTable, Static

from strom.app import StromApp
from tests.api.charger import running_charger
from tests.conftest import free_settings
from tests.money.conftest import CP, World
from tests.money.test_reservations import FEE, ReservingCharger, reserve
from tests.tui.test_tui import SIZE, console_for, fill, text, until
from tui.screens.charger import ChargerScreen


async def test_the_operator_cancels_a_reservation_from_the_console(data_dir: Path) -> None:
    settings = free_settings(tariff={"reservation": {"fee_msat": FEE,
                                                     "check_interval_seconds": 0.2}})
    async with StromApp(settings, data_dir) as app:
        await app.services.charge_points.add(CP, name="Money Street", lat=50.1, lon=8.7,
                                             num_connectors=1)
        async with running_charger(app.services.central_system.url, CP, connectors=1,
                                   charger_class=ReservingCharger) as charger, \
                httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
            world = World(app, None, http)  # type: ignore[arg-type]
            session = await reserve(world)
            (rid, _), = charger.reservations.items()
            console = console_for(app)
            async with console.run_test(size=SIZE) as pilot:
                table = console.screen.query_one(DataTable)
                await until(pilot, lambda: table.row_count == 1)
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(console.screen, ChargerScreen))
                screen = console.screen
                await until(pilot, lambda: screen.cp is not None)
                await pilot.press("v")
                await fill(pilot, {"connector": "1"})
                result = screen.query_one("#result", Static)
                await until(pilot, lambda: "Cancel reservation 1: charger answered Accepted"
                            in text(result))
            assert charger.cancelled == [rid]
            ended = await world.session(session["url"])
            assert ended["state"] == "failed" and ended["refundable_msat"] == FEE
            await world.ledger_ok()
