"""Snapshots (SVG, 80×24) of every console screen against a real strom with fixed data.

The server runs in a thread (the snapshot runner starts its own event loop); its data comes
from `tests.tui.seed`. `pytest --snapshot-update` rewrites tests/tui/__snapshots__/ after a
deliberate change of the console's looks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RichLog

from strom.events import LogLine
from tests.api.live_server import LiveServer
from tests.conftest import free_settings
from tests.tui.seed import PUBLIC_URL, seed
from tui.app import StromConsole
from tui.client import StromClient

SnapCompare = Callable[..., bool]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("snapshots") / "data"
    # The seeded refund waits for its payer since a fixed day long ago: it must not be
    # forfeited while the snapshots are taken. No server log lines on the bus: only the
    # test's own lines may reach the log snapshot.
    settings = free_settings(http={"public_url": PUBLIC_URL},
                             sessions={"refund_expiry_days": 100_000})
    with LiveServer(settings, data_dir, bus_log=False) as server:
        server.call(lambda: seed(server.services, data_dir))
        yield server


def console(live: LiveServer) -> StromConsole:
    return StromConsole(StromClient(live.http_url, live.token))


async def wait(pilot: Pilot[Any], check: Callable[[], bool], tries: int = 200) -> None:
    for _ in range(tries):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError("the console did not get there")


async def loaded(pilot: Pilot[Any], table_id: str | None = None, rows: int = 1) -> None:
    """Data and the live stream are in; text inputs stop blinking (a blink is no change)."""
    app = pilot.app
    assert isinstance(app, StromConsole)
    await wait(pilot, lambda: app.online)
    if table_id:
        await wait(pilot, lambda: app.screen.query_one(table_id, DataTable).row_count >= rows)
    await pilot.pause(0.2)
    for field in app.screen.query(Input):
        field.cursor_blink = False


def test_dashboard(snap_compare: SnapCompare, live: LiveServer) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await loaded(pilot, "#chargers", 2)

    assert snap_compare(console(live), run_before=before)


def test_charger_detail(snap_compare: SnapCompare, live: LiveServer) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await loaded(pilot, "#chargers", 2)
        await pilot.press("enter")
        await loaded(pilot, "#connectors", 2)

    assert snap_compare(console(live), run_before=before)


def test_charger_pay_qr(snap_compare: SnapCompare, live: LiveServer) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await loaded(pilot, "#chargers", 2)
        await pilot.press("enter")
        await loaded(pilot, "#connectors", 2)
        await pilot.press("p")

    assert snap_compare(console(live), run_before=before)


def test_tariff_form(snap_compare: SnapCompare, live: LiveServer) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await loaded(pilot, "#chargers", 2)
        await pilot.press("down", "enter")
        await loaded(pilot, "#connectors", 1)
        await pilot.press("t")
        await loaded(pilot)

    assert snap_compare(console(live), run_before=before)


def test_sessions(snap_compare: SnapCompare, live: LiveServer) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await loaded(pilot, "#chargers", 2)
        await pilot.press("s")
        await loaded(pilot, "#sessions", 3)

    assert snap_compare(console(live), run_before=before)


def test_session_detail(snap_compare: SnapCompare, live: LiveServer) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await loaded(pilot, "#chargers", 2)
        await pilot.press("s")
        await loaded(pilot, "#sessions", 3)
        await pilot.press("enter")

    assert snap_compare(console(live), run_before=before)


def test_keys(snap_compare: SnapCompare, live: LiveServer) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await loaded(pilot, "#chargers", 2)
        await pilot.press("k")
        await loaded(pilot, "#keys", 2)

    assert snap_compare(console(live), run_before=before)


def test_ledger_with_check(snap_compare: SnapCompare, live: LiveServer) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("l")
        await pilot.pause(0.3)
        await pilot.press("c")
        await wait(pilot, lambda: "Ledger OK" in str(pilot.app.screen.query_one("#check")
                                                     .render()))

    assert snap_compare(console(live), run_before=before)


def test_live_log(snap_compare: SnapCompare, live: LiveServer) -> None:
    lines = [LogLine("INFO", "strom.ocpp", "demo-1: transaction 7 started on connector 1"),
             LogLine("WARNING", "strom.sessions", "session a1b2c3d4e5f60718: RemoteStop failed"),
             LogLine("ERROR", "strom.lightning", "wallet unreachable: connection refused")]

    async def before(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("g")
        bus = live.services.bus

        async def publish() -> None:
            for line in lines:
                bus.publish(line)

        live.call(publish)
        log = pilot.app.screen.query_one(RichLog)
        await wait(pilot, lambda: len(log.lines) >= len(lines))

    assert snap_compare(console(live), run_before=before)


def test_help(snap_compare: SnapCompare, live: LiveServer) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await loaded(pilot)
        await pilot.press("question_mark")

    assert snap_compare(console(live), run_before=before)
