"""The dashboard: every charger with live status, power, current session and today's takings."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tui.format import kw, plain, sat, status
from tui.screens.base import ConsoleScreen, cursor_key, nav_bar, restore_cursor
from tui.screens.charger import ChargerScreen

COLUMNS = (("id", "Charger"), ("name", "Name"), ("status", "Status"), ("power", "Power"),
           ("session", "Session"), ("today", "Today"))


def session_words(cp: dict[str, Any]) -> Text:
    sessions = cp.get("sessions") or []
    if not sessions:
        return Text("-")
    first = sessions[0]
    words = f"{first['state']} {first['energy_wh'] / 1000:.2f} kWh"
    return Text(words + (f" +{len(sessions) - 1}" if len(sessions) > 1 else ""))


def row(cp: dict[str, Any]) -> list[Text]:
    return [plain(cp["id"]), plain(cp["name"]), status(cp["status"]), Text(kw(cp["power_w"])),
            session_words(cp), Text(sat(cp["earned_today_msat"]), justify="right")]


class DashboardScreen(ConsoleScreen):
    """All chargers, updated live; Enter (or o) opens one."""

    BINDINGS = [Binding("o", "open", "Open"), Binding("r", "refresh", "Refresh")]

    def __init__(self) -> None:
        super().__init__()
        self._cps: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield nav_bar("dashboard")
        yield DataTable(id="chargers", cursor_type="row", zebra_stripes=True)
        yield Static("", id="totals", classes="status-line")
        yield Footer()

    async def on_mount(self) -> None:
        await super().on_mount()
        self.title = "Chargers"
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        await self.action_refresh()

    async def action_refresh(self) -> None:
        cps = await self.attempt(self.client.charge_points())
        if cps is None:
            return
        self._cps = {cp["id"]: cp for cp in cps}
        table = self.query_one(DataTable)
        selected = cursor_key(table)
        table.clear()
        for cp in cps:
            table.add_row(*row(cp), key=cp["id"])
        restore_cursor(table, selected)
        self._totals()

    def _totals(self) -> None:
        cps = list(self._cps.values())
        online = sum(1 for cp in cps if cp["connected"])
        earned = sum(cp["earned_today_msat"] for cp in cps)
        self.query_one("#totals", Static).update(
            f"{len(cps)} chargers, {online} online · earned today {sat(earned)}"
            if cps else "No chargers yet: add one with `strom cp add`.")

    async def on_live(self, name: str, data: dict[str, Any]) -> None:
        if name == "reconnected":
            await self.action_refresh()
        if name != "charge_point":
            return
        if data["id"] not in self._cps:
            await self.action_refresh()
            return
        self._cps[data["id"]] = data
        table = self.query_one(DataTable)
        for (key, _), cell in zip(COLUMNS, row(data), strict=True):
            table.update_cell(data["id"], key, cell)
        self._totals()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(ChargerScreen(event.row_key.value))

    def action_open(self) -> None:
        if (key := cursor_key(self.query_one(DataTable))) is not None:
            self.app.push_screen(ChargerScreen(key))
