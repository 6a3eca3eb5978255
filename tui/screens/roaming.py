"""Roaming (key R): the OCPI eMSP parties and their state; issue a registration token A
(shown once), remove a party."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tui.format import plain
from tui.forms import Field, FormScreen, MessageScreen
from tui.screens.base import ConsoleScreen, cursor_key, nav_bar, refill

STATE_STYLE = {"registered": "green", "pending": "yellow", "unregistered": "dim"}


def token_a_message(issued: dict[str, Any]) -> str:
    """What the operator hands the eMSP: strom's versions URL and the token A, once."""
    return (f"Give {issued['party']['name']} these two; the token is not shown again.\n\n"
            f"versions URL: {issued['versions_url']}\n"
            f"token A:      {issued['token_a']}\n\n"
            "The eMSP registers with them (credentials POST); the party is then registered.")


class RoamingScreen(ConsoleScreen):
    BINDINGS = [
        Binding("a", "add", "Add eMSP (token A)"),
        Binding("x", "remove", "Remove party"),
        Binding("r", "refresh", "Refresh"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield nav_bar("roaming")
        yield DataTable(id="parties", cursor_type="row", zebra_stripes=True)
        yield Static("", id="roaming-hint")
        yield Footer()

    async def on_mount(self) -> None:
        await super().on_mount()
        self.title = "Roaming (OCPI eMSPs)"
        table = self.query_one(DataTable)
        for key, label in (("id", "#"), ("name", "Name"), ("state", "State"),
                           ("party", "Party"), ("modules", "Modules")):
            table.add_column(label, key=key)
        await self.action_refresh()

    async def action_refresh(self) -> None:
        parties = await self.attempt(self.client.ocpi_parties())
        if parties is None:
            return
        refill(self.query_one(DataTable), (party_row(party) for party in parties))
        hint = "" if parties else "No eMSPs yet: a issues a token A for one."
        self.query_one("#roaming-hint", Static).update(Text(hint, style="dim"))

    def action_add(self) -> None:
        async def submit(values: dict[str, Any] | None) -> None:
            if values is None:
                return
            issued = await self.attempt(self.client.add_ocpi_party(str(values["name"]).strip()))
            if issued is not None:
                await self.action_refresh()
                self.app.push_screen(MessageScreen("Token A (shown once)",
                                                   token_a_message(issued), wide=True))

        self.app.push_screen(FormScreen(
            "Add an eMSP", [Field("name", "Whose (the eMSP's name)")], "Issue token A",
            note="strom issues a registration token A; the eMSP registers with it."), submit)

    async def action_remove(self) -> None:
        party_id = cursor_key(self.query_one(DataTable))
        if party_id is None:
            self.notify("no party selected", severity="warning")
            return
        if await self.attempt(self.client.remove_ocpi_party(int(party_id)),
                              f"party {party_id} removed"):
            await self.action_refresh()

    async def on_live(self, name: str, data: dict[str, Any]) -> None:
        if name == "reconnected":
            await self.action_refresh()


def party_row(party: dict[str, Any]) -> tuple[str, list[Any]]:
    """One eMSP party: id, name, state, OCPI party code, modules."""
    who = f"{party['country_code']}*{party['party_id']}" if party["party_id"] else "-"
    return str(party["id"]), [str(party["id"]), plain(party["name"]),
                              Text(party["state"], style=STATE_STYLE.get(party["state"], "")),
                              plain(who), plain(" ".join(party["modules"]) or "-")]
