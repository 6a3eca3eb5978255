"""Sites: each site's limit, its chargers and the share each running session got (key w: watts)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from tui.screens.base import ConsoleScreen, nav_bar


def kw(watts: float | None) -> str:
    return "-" if watts is None else f"{watts / 1000:.1f} kW"


def sites_text(sites: list[dict[str, Any]]) -> Text:
    """Every site: limit and use, then one line per running session, then refusing chargers."""
    if not sites:
        return Text("No sites. Define one with `strom site set ID --limit-w 22000` or"
                    " PUT /api/v1/sites/{id}.", style="dim")
    text = Text()
    for site in sites:
        text.append(f"{site['name']}", style="bold")
        text.append(f"  {kw(site['allocated_w'])} of {kw(site['limit_w'])}"
                    f"  ({len(site['chargers'])} charger(s))\n")
        for share in site["allocations"]:
            state = "waits (minimum does not fit)" if share["waiting"] else \
                share["outcome"] or "not sent"
            text.append(f"  {share['cp_id']}/{share['connector_id']:<3} {kw(share['watts']):>9}"
                        f"  {state}", style="yellow" if share["waiting"] else "")
            if share["read_back_w"] is not None:
                text.append(f"  charger applies {kw(share['read_back_w'])}", style="dim")
            text.append("\n")
        for charger in site["chargers"]:
            if charger["refuses_limits"]:
                text.append(f"  {charger['cp_id']} takes no limits: {charger['refuses_limits']}\n",
                            style="red")
        text.append("\n")
    return text


class SitesScreen(ConsoleScreen):
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield nav_bar("sites")
        with VerticalScroll():
            yield Static("", id="sites")
        yield Footer()

    async def on_mount(self) -> None:
        await super().on_mount()
        self.title = "Sites"
        await self.action_refresh()

    async def action_refresh(self) -> None:
        answer = await self.attempt(self.client.sites())
        if answer is not None:
            self.query_one("#sites", Static).update(sites_text(answer["items"]))

    async def on_live(self, name: str, data: dict[str, Any]) -> None:
        if name in ("session", "reconnected"):
            await self.action_refresh()
