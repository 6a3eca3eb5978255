"""The dashboard: every charger with live status, power, current session and today's takings."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tui.client import ApiError
from tui.format import kw, plain, sat, status
from tui.screens.base import ConsoleScreen, cursor_key, nav_bar, refill
from tui.screens.charger import ChargerScreen

RELAY_POLL = 10.0  # seconds between looks at the relays' state (`/healthz`)
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


def relay_troubles(relays: list[dict[str, Any]], now: float) -> str:
    """One line per relay of strom's that refused, rested or did not answer; "" when all
    are fine (the operator is told about trouble, not about normal operation)."""
    lines = []
    for relay in relays:
        said = []
        if relay.get("last_refusal"):
            said.append(f"refused {relay['refused']}× (last: {relay['last_reason']})")
        if relay.get("unanswered"):
            said.append(f"no answer {relay['unanswered']}×")
        if relay.get("dropped"):
            said.append(f"{relay['dropped']} dropped")
        if (until := relay.get("resting_until")) and until > now:
            said.append(f"resting {until - now:.0f} s")
        if relay.get("auth") == "required":
            said.append("asks for AUTH")
        if said:
            lines.append(f"Relay {relay['url']}: " + ", ".join(said))
    return "\n".join(lines)


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
        yield Static("", id="relays", classes="status-line warning")
        yield Footer()

    async def on_mount(self) -> None:
        await super().on_mount()
        self.title = "Chargers"
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#relays", Static).display = False
        await self.action_refresh()
        self.set_interval(RELAY_POLL, self._relays)

    async def action_refresh(self) -> None:
        cps = await self.attempt(self.client.charge_points())
        if cps is None:
            return
        self._cps = {cp["id"]: cp for cp in cps}
        refill(self.query_one(DataTable), ((cp["id"], row(cp)) for cp in cps))
        self._totals()
        await self._relays()

    async def _relays(self) -> None:
        try:
            health = await self.client.health()
        except ApiError:  # the console already says when the server is gone
            return
        relays = (health.get("checks", {}).get("nostr") or {}).get("relays") or []
        words = relay_troubles(relays, time.time())
        line = self.query_one("#relays", Static)
        line.update(words)
        line.display = bool(words)

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
            # A cell may grow (Offline → Unavailable): its column must grow with it.
            table.update_cell(data["id"], key, cell, update_width=True)
        self._totals()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(ChargerScreen(event.row_key.value))

    def action_open(self) -> None:
        if (key := cursor_key(self.query_one(DataTable))) is not None:
            self.app.push_screen(ChargerScreen(key))
