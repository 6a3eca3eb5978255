"""The operator console driven with Textual's pilot at 80×24, against a real running strom.

Every screen and action goes through the real admin API and, for commands, over OCPP to a
real (library) charger; the checks read the console's widgets and the server's own API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from nostr_sdk import Keys
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RichLog, Select, Static
from textual.widgets.data_table import ColumnKey

from strom import qr
from strom.app import StromApp
from tests.api.charger import TestCharger, running_charger
from tests.api.firmware_charger import FirmwareCharger
from tests.api.flows import newest_item, pay_and_charge
from tests.conftest import free_settings
from tests.nostr.conftest import register
from tests.nostr.test_refusals import Relay, start
from tui.app import StromConsole
from tui.client import StromClient
from tui.forms import FormScreen, MessageScreen
from tui.screens import dashboard
from tui.screens.charger import ChargerScreen
from tui.screens.help import HelpScreen
from tui.screens.sessions import SessionScreen

SIZE = (80, 24)


@pytest.fixture
async def app(data_dir: Path) -> AsyncIterator[StromApp]:
    async with StromApp(free_settings(ocpp={"call_timeout": 2.0}), data_dir) as running:
        yield running  # it streams its log lines itself (strom/logsetup.py)


@pytest.fixture
async def admin(app: StromApp) -> AsyncIterator[httpx.AsyncClient]:
    assert app.services is not None
    headers = {"Authorization": f"Bearer {app.services.admin_token}"}
    async with httpx.AsyncClient(base_url=app.http_url, headers=headers, timeout=40) as http:
        for cp_id, name in (("cp-1", "Market Square"), ("cp-2", "Garage")):
            added = await http.post("/api/v1/charge-points", json={
                "id": cp_id, "name": name, "lat": 48.1, "lon": 11.5, "connectors": 2})
            assert added.status_code == 201
        yield http


class Recorder:
    """The console's notifications, as the operator would have read them."""

    def __init__(self, console: StromConsole) -> None:
        self.messages: list[str] = []
        original = console.notify

        def notify(message: str, *args: Any, **kwargs: Any) -> None:
            self.messages.append(str(message))
            original(message, *args, **kwargs)

        console.notify = notify  # type: ignore[method-assign]

    def saw(self, fragment: str) -> bool:
        return any(fragment in m for m in self.messages)


def console_for(app: StromApp, token: str | None = None) -> StromConsole:
    assert app.services is not None
    return StromConsole(StromClient(app.http_url, token or app.services.admin_token))


async def until(pilot: Pilot[Any], check: Callable[[], bool], within: float = 10) -> None:
    async with asyncio.timeout(within):
        while not check():
            await pilot.pause(0.05)


def rows(table: DataTable[Any]) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row(row.key)] for row in table.ordered_rows]


def text(widget: Static) -> str:
    return str(widget.render())


async def fill(pilot: Pilot[Any], values: dict[str, str]) -> None:
    form = pilot.app.screen
    assert isinstance(form, FormScreen)
    for name, value in values.items():
        form.query_one(f"#f-{name}", Input).value = value
    await pilot.click("#submit")


async def charger_screen(pilot: Pilot[Any], cp_id: str) -> ChargerScreen:
    table = pilot.app.screen.query_one(DataTable)
    await until(pilot, lambda: table.row_count == 2)
    table.move_cursor(row=[r.key.value for r in table.ordered_rows].index(cp_id))
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, ChargerScreen))
    screen = pilot.app.screen
    assert isinstance(screen, ChargerScreen)
    await until(pilot, lambda: screen.cp is not None)
    return screen


async def with_charger(app: StromApp, cp_id: str,
                       body: Callable[[TestCharger], Awaitable[None]]) -> None:
    assert app.services is not None and app.services.central_system is not None
    async with running_charger(app.services.central_system.url, cp_id) as charger:
        await body(charger)


# --- dashboard ----------------------------------------------------------------------------


async def test_dashboard_shows_chargers_and_follows_them_live(app: StromApp,
                                                              admin: httpx.AsyncClient) -> None:
    console = console_for(app)
    async with console.run_test(size=SIZE) as pilot:
        table = console.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2)
        assert [r[:3] for r in rows(table)] == [["cp-1", "Market Square", "Offline"],
                                                ["cp-2", "Garage", "Offline"]]
        await until(pilot, lambda: console.online)

        async def charge(charger: TestCharger) -> None:
            await until(pilot, lambda: rows(table)[0][2] == "Available")
            await pay_and_charge(admin, charger, "cp-1", energy_wh=1500, power_w=7400)
            await until(pilot, lambda: rows(table)[0][3] == "7.4 kW")
            assert rows(table)[0][4] == "charging 1.50 kWh"
            await until(pilot, lambda: rows(table)[0][5] == "450 sat")
            totals = text(console.screen.query_one("#totals", Static))
            assert totals == "2 chargers, 1 online · earned today 450 sat"

        await with_charger(app, "cp-1", charge)
        await until(pilot, lambda: rows(table)[0][2] == "Offline")  # it went away, live


# --- one charger --------------------------------------------------------------------------


async def test_charger_commands_tariff_and_qr(app: StromApp, admin: httpx.AsyncClient) -> None:
    console = console_for(app)
    said = Recorder(console)
    async with console.run_test(size=SIZE) as pilot:
        screen = await charger_screen(pilot, "cp-1")
        facts = text(screen.query_one("#facts", Static))
        npub = (await admin.get("/api/v1/keys/cp-1")).json()["npub"]
        assert npub in facts and "300 sat/kWh, no fee (default prices)" in facts
        result = screen.query_one("#result", Static)

        async def commands(charger: TestCharger) -> None:
            await pilot.press("x")
            await pilot.click("#f-hard")
            await pilot.click("#submit")
            await until(pilot, lambda: "Hard reset: charger answered Accepted" in text(result))
            await pilot.press("u")
            await fill(pilot, {"connector": "2"})
            await until(pilot, lambda: "Unlock 2: charger answered Unlocked" in text(result))
            await pilot.press("a")
            await pilot.click("#f-operative")  # untick: out of service
            await fill(pilot, {"connector": "0"})
            await until(pilot, lambda: "charger answered Accepted" in text(result)
                        and "Connector 0 inoperative" in text(result))
            await pilot.press("c")
            await until(pilot, lambda: "Status request: charger answered Accepted" in text(result))
            await pilot.press("u")
            await fill(pilot, {"connector": "7"})
            await until(pilot, lambda: said.saw("connector '7' does not exist"))
            assert [a for a, _ in charger.asked] == ["Reset", "UnlockConnector",
                                                     "ChangeAvailability", "TriggerMessage"]
            assert charger.asked[0][1] == {"type": "Hard"}
            assert charger.asked[2][1] == {"connector_id": 0, "type": "Inoperative"}

        await with_charger(app, "cp-1", commands)
        await until(pilot, lambda: "Offline" in text(screen.query_one("#facts", Static)))
        await pilot.press("c")
        await until(pilot, lambda: said.saw("charge point cp-1 is not connected"))

        await pilot.press("t")
        await fill(pilot, {"price_msat_per_kwh": "420", "session_fee_msat": "1.5"})
        await until(pilot, lambda: "420 sat/kWh" in text(screen.query_one("#facts", Static)))
        override = (await admin.get("/api/v1/tariffs/cp-1")).json()["override"]
        assert override == {"price_msat_per_kwh": 420_000, "session_fee_msat": 1500}
        await pilot.press("t")
        await fill(pilot, {"price_msat_per_kwh": "lots"})
        await until(pilot, lambda: said.saw("'lots' is not a number"))
        await pilot.press("t")
        await fill(pilot, {"price_msat_per_kwh": "", "session_fee_msat": "",
                           "max_prepay_msat": "1"})
        await until(pilot, lambda: said.saw("max_prepay_msat"))  # the server's reason

        await pilot.press("p")
        await until(pilot, lambda: isinstance(console.screen, MessageScreen))
        cp = (await admin.get("/api/v1/charge-points/cp-1")).json()
        shown = text(console.screen.query_one(".message", Static))
        assert shown == qr.terminal(cp["lnurl"]) + f"\n{cp['lud16']}"
        await pilot.press("escape")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(console.screen, ChargerScreen))


async def test_charger_firmware_and_security_log(app: StromApp, admin: httpx.AsyncClient) -> None:
    assert app.services is not None and app.services.central_system is not None
    stored = (await admin.post("/api/v1/firmware", params={"name": "fw.bin"},
                               content=b"image")).json()
    async with running_charger(app.services.central_system.url, "cp-1",
                               charger_class=FirmwareCharger):
        assert (await admin.post("/api/v1/firmware/updates", json={
            "cp_id": "cp-1", "file_id": stored["id"]})).status_code == 201
        await newest_item(admin, "/api/v1/charge-points/cp-1/security-events",
                          lambda e: e["type"] == "FirmwareUpdated")
    console = console_for(app)
    async with console.run_test(size=SIZE) as pilot:
        await charger_screen(pilot, "cp-1")
        await pilot.press("f")
        await until(pilot, lambda: isinstance(console.screen, MessageScreen))
        shown = text(console.screen.query_one(".message", Static))
        assert "Requested → Downloading → Downloaded → Installing → Installed" in shown
        assert "FirmwareUpdated" in shown and "none yet" in shown  # no diagnostics asked


# --- sessions -----------------------------------------------------------------------------


async def test_sessions_filter_detail_and_admin_stop(app: StromApp,
                                                     admin: httpx.AsyncClient) -> None:
    console = console_for(app)
    said = Recorder(console)

    async def scenario(charger: TestCharger) -> None:
        session = await pay_and_charge(admin, charger, "cp-1", amount_msat=2_000_000)
        async with console.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            table = console.screen.query_one("#sessions", DataTable)
            await until(pilot, lambda: table.row_count == 1)
            assert rows(table) == [[session["id"], "cp-1", "charging", "2,000", "450", "1,550"]]

            console.screen.query_one("#state", Select).value = "stopped"
            await until(pilot, lambda: table.row_count == 0)
            assert text(console.screen.query_one("#paging", Static)) == "No sessions match."
            console.screen.query_one("#state", Select).clear()
            await pilot.press("f")
            await pilot.press(*"cp-2", "enter")
            await until(pilot, lambda: table.row_count == 0)
            await pilot.press("f")
            console.screen.query_one("#cp-filter", Input).value = "cp-1"
            await pilot.press("enter")
            await until(pilot, lambda: table.row_count == 1)

            table.focus()
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(console.screen, SessionScreen))
            details = text(console.screen.query_one("#session-details", Static))
            assert "charging: refund after the stop" in details and "2,000 sat" in details
            await pilot.press("x")
            await until(pilot, lambda: not isinstance(console.screen, SessionScreen))
            assert said.saw(f"session {session['id']} stopped: 1,550 sat waiting for the payer")
            await until(pilot, lambda: rows(table)[0][2] == "stopped")

            await pilot.press("enter")
            await until(pilot, lambda: isinstance(console.screen, SessionScreen))
            assert not console.screen.query("#stop")  # nothing left to stop
            await pilot.press("escape")

    await with_charger(app, "cp-1", scenario)
    stopped = (await admin.get("/api/v1/sessions?cp_id=cp-1")).json()["items"][0]
    assert stopped["state"] == "stopped" and stopped["stop_reason"] == "stopped by the operator"


# --- keys ---------------------------------------------------------------------------------


async def test_keys_show_generate_import_encrypt_rotate(app: StromApp,
                                                        admin: httpx.AsyncClient) -> None:
    assert app.services is not None
    await app.services.charge_points.add("cp-3", name="No key yet", lat=1, lon=2)
    console = console_for(app)
    said = Recorder(console)
    async with console.run_test(size=SIZE) as pilot:
        await pilot.press("k")
        table = console.screen.query_one("#keys", DataTable)
        await until(pilot, lambda: table.row_count == 3)
        assert [r[:2] for r in rows(table)] == [["cp-1", "nsec"], ["cp-2", "nsec"],
                                                ["cp-3", "no key"]]

        key = (await admin.get("/api/v1/keys/cp-1")).json()
        await pilot.press("v")
        await until(pilot, lambda: isinstance(console.screen, MessageScreen))
        shown = text(console.screen.query_one(".message", Static))
        assert key["npub"] in shown and key["pubkey"] in shown and "nsec (not" in shown
        await pilot.press("escape")

        await pilot.press("e")
        await fill(pilot, {"password": "correct horse"})
        await until(pilot, lambda: rows(table)[0][1] == "ncryptsec")
        await pilot.press("o")
        await until(pilot, lambda: isinstance(console.screen, FormScreen))
        assert "new nostr identity" in text(console.screen.query_one(".dialog-note", Static))
        await fill(pilot, {"password": "correct horse"})
        await until(pilot, lambda: isinstance(console.screen, MessageScreen))
        rotated = (await admin.get("/api/v1/keys/cp-1")).json()
        assert rotated["npub"] != key["npub"] and rotated["encrypted"] is True
        message = text(console.screen.query_one(".message", Static))
        assert f"old {key['npub']}" in message and f"new {rotated['npub']}" in message
        await pilot.press("escape")

        mine = Keys.generate()
        table.move_cursor(row=1)
        await pilot.press("i")
        form = console.screen
        assert isinstance(form, FormScreen)
        await pilot.click("#f-replace")
        await fill(pilot, {"secret": mine.secret_key().to_bech32()})
        await until(pilot, lambda: said.saw(f"cp-2 imported: {mine.public_key().to_bech32()}"))
        assert (await admin.get("/api/v1/keys/cp-2")).json()["npub"] == \
            mine.public_key().to_bech32()
        await pilot.press("i")
        await fill(pilot, {"secret": "nsec1garbage"})
        await until(pilot, lambda: said.saw("not a valid nsec"))

        table.move_cursor(row=2)
        await pilot.press("n")
        await pilot.click("#submit")
        await until(pilot, lambda: rows(table)[2][1] == "nsec")
        assert rows(table)[2][2].startswith("npub1")
        await pilot.press("n")
        await pilot.click("#submit")
        await until(pilot, lambda: said.saw("cp-3 already has a key"))
    secrets = [m for m in said.messages if "nsec1" in m and "not a valid" not in m]
    assert secrets == []


# --- ledger, log, help, errors ------------------------------------------------------------


async def test_ledger_summary_and_check(app: StromApp, admin: httpx.AsyncClient) -> None:
    async def scenario(charger: TestCharger) -> None:
        await pay_and_charge(admin, charger, "cp-1", amount_msat=2_000_000)
        console = console_for(app)
        async with console.run_test(size=SIZE) as pilot:
            await pilot.press("l")
            summary = console.screen.query_one("#summary", Static)
            await until(pilot, lambda: "2,000 sat" in text(summary))
            shown = text(summary)
            assert "received from payers" in shown and "cp-1" in shown and "450 sat" in shown
            await pilot.press("c")
            check = console.screen.query_one("#check", Static)
            await until(pilot, lambda: text(check).startswith("Ledger OK: for all 1 sessions"))

    await with_charger(app, "cp-1", scenario)


async def test_live_log(app: StromApp, admin: httpx.AsyncClient) -> None:
    console = console_for(app)
    logger = logging.getLogger("strom.operator-test")
    logger.setLevel(logging.INFO)
    async with console.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: console.online)
        logger.warning("before the log screen opened")
        await pilot.press("g")
        log = console.screen.query_one(RichLog)
        await until(pilot, lambda: any("before the log screen" in line.text for line in log.lines))
        logger.info("charger %s said hello", "cp-1")
        await until(pilot, lambda: any("charger cp-1 said hello" in line.text
                                       for line in log.lines))
        assert any(line.text.startswith("WARNING strom.operator-test:") for line in log.lines)
        logger.info("a last line")
        await until(pilot, lambda: any("a last line" in line.text for line in log.lines))
        # Each line once: the screen follows the live stream once, however often it mounts.
        assert sum("charger cp-1 said hello" in line.text for line in log.lines) == 1
        await pilot.press("c")
        await until(pilot, lambda: not log.lines)


async def test_help_screen(app: StromApp, admin: httpx.AsyncClient) -> None:
    console = console_for(app)
    async with console.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(console.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(console.screen, HelpScreen))
        await pilot.press("q")
    assert console.return_code == 0


async def test_console_says_when_the_server_is_gone_or_the_token_wrong(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    gone = StromConsole(StromClient("http://127.0.0.1:9", "whatever"), retry_seconds=0.05)
    said = Recorder(gone)
    async with gone.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: said.saw("strom is not reachable at http://127.0.0.1:9"))
        await until(pilot, lambda: gone.sub_title == "not connected: retrying")
    wrong = console_for(app, token="wrong")
    said = Recorder(wrong)
    async with wrong.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: said.saw("the server refused the admin token"))
        assert wrong.screen.query_one(DataTable).row_count == 0


async def test_dashboard_widens_a_status_that_grows_after_the_first_draw(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    """Issue 18: at 100 columns "Unavailable" showed as "Unavailab" (the cell was updated,
    its column kept the width of "Offline")."""
    console = console_for(app)
    async with console.run_test(size=(100, 24)) as pilot:
        table = console.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2)

        async def unavailable(charger: TestCharger) -> None:
            await until(pilot, lambda: rows(table)[0][2] == "Available")
            await charger.status(0, "Unavailable")
            await until(pilot, lambda: rows(table)[0][2] == "Unavailable")
            await pilot.pause(0.1)
            assert table.columns[ColumnKey("status")].content_width >= len("Unavailable")
            assert "Unavailable" in console.export_screenshot()

        await with_charger(app, "cp-1", unavailable)


async def test_dashboard_tells_the_operator_which_relay_refuses(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "RELAY_POLL", 0.2)
    strict = Relay("blocked: not on the list")
    server = await start(strict)
    await register(data_dir)  # a keyed charger: strom announces it on every relay
    try:
        async with StromApp(free_settings(nostr={"relays": [strict.url]}), data_dir) as running:
            console = console_for(running)
            async with console.run_test(size=SIZE) as pilot:
                line = console.screen.query_one("#relays", Static)
                await until(pilot, lambda: "blocked: not on the list" in text(line))
                assert text(line).startswith(f"Relay {strict.url}: refused")
                assert line.display
    finally:
        server.close()
