"""Cards: the owner's RFID cards, the prepaid accounts they draw from, and each charger's
local list — add or remove a card, top up an account."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from tui.format import plain, sat
from tui.forms import Field, FormScreen
from tui.screens.base import ConsoleScreen, cursor_key, nav_bar, refill


def accounts_text(accounts: list[dict[str, Any]], lists: dict[str, Any]) -> Text:
    """The accounts' balances and how far each charger's local list is."""
    text = Text()
    text.append("Accounts\n", style="bold")
    if not accounts:
        text.append("  none: a card billed to an account needs one (t opens or tops up)\n",
                    style="dim")
    for account in accounts:
        text.append(f"  {account['id']:<20}", style="")
        text.append(f"{sat(account['balance_msat']):>16}  {account['name']}\n")
    text.append(f"Local lists (version {lists['version']})\n", style="bold")
    for charger in lists["chargers"]:
        if charger["supported"] is False:
            state, style = f"no local list: {charger['detail']}", "yellow"
        elif charger["list_version"] == lists["version"]:
            state, style = "up to date", "green"
        else:
            state, style = charger["detail"] or f"holds {charger['list_version']}", "yellow"
        text.append(f"  {charger['cp_id']:<20}", style="")
        text.append(f"{state}\n", style=style)
    return text


def card_row(card: dict[str, Any]) -> tuple[Text, ...]:
    status = card["status"] or "-"
    return (plain(card["id_tag"]), Text(card["rule"]), plain(card["account"] or "-"),
            Text(status, style="red" if status == "Blocked" else ""), plain(card["label"]))


class CardsScreen(ConsoleScreen):
    BINDINGS = [
        Binding("a", "add", "Add card"),
        Binding("x", "remove", "Remove card"),
        Binding("t", "topup", "Top up account"),
        Binding("r", "refresh", "Refresh"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield nav_bar("cards")
        yield DataTable(id="cards", cursor_type="row", zebra_stripes=True)
        with VerticalScroll():
            yield Static("", id="accounts")
        yield Footer()

    async def on_mount(self) -> None:
        await super().on_mount()
        self.title = "Owner cards"
        table = self.query_one(DataTable)
        for key, label in (("tag", "idTag"), ("rule", "Rule"), ("account", "Account"),
                           ("status", "In lists"), ("label", "Whose")):
            table.add_column(label, key=key)
        await self.action_refresh()

    async def action_refresh(self) -> None:
        cards = await self.attempt(self.client.cards())
        accounts = await self.attempt(self.client.card_accounts()) if cards is not None else None
        lists = await self.attempt(self.client.local_list()) if accounts is not None else None
        if cards is None or accounts is None or lists is None:
            return
        refill(self.query_one(DataTable), ((card["id_tag"], card_row(card)) for card in cards))
        self.query_one("#accounts", Static).update(accounts_text(accounts, lists))

    def action_add(self) -> None:
        async def submit(values: dict[str, Any] | None) -> None:
            if values is None:
                return
            account = str(values["account"]).strip()
            body = {"id_tag": str(values["id_tag"]).strip(), "label": str(values["label"]),
                    "rule": "account" if account else "free", "account": account or None}
            card = await self.attempt(self.client.add_card(body))
            if card is not None:
                self.notify(f"card {card['id_tag']} added ({card['rule']})")
                await self.action_refresh()

        self.app.push_screen(FormScreen(
            "Register a card", [Field("id_tag", "idTag (up to 20)"),
                                Field("account", "Account (empty: free)"),
                                Field("label", "Whose card")], "Add",
            note="A free card charges at no cost; a card with an account draws from it at the"
                 " charger's tariff."), submit)

    async def action_remove(self) -> None:
        id_tag = cursor_key(self.query_one(DataTable))
        if id_tag is None:
            self.notify("no card selected", severity="warning")
            return
        if await self.attempt(self.client.remove_card(id_tag), f"card {id_tag} removed"):
            await self.action_refresh()

    def action_topup(self) -> None:
        async def submit(values: dict[str, Any] | None) -> None:
            if values is None:
                return
            try:
                amount = int(str(values["amount"]).replace(",", "").strip()) * 1000
            except ValueError:
                self.notify("the amount is a whole number of sat", severity="error")
                return
            answer = await self.attempt(self.client.top_up(str(values["account"]).strip(),
                                                           amount))
            if answer is not None:
                self.notify(f"account {answer['id']}: {sat(answer['balance_msat'])}")
                await self.action_refresh()

        self.app.push_screen(FormScreen(
            "Top up an account", [Field("account", "Account"),
                                  Field("amount", "sat (negative: take back)")], "Top up",
            note="An unknown account is opened with this amount."), submit)

    async def on_live(self, name: str, data: dict[str, Any]) -> None:
        if name in ("charge_point", "reconnected"):
            await self.action_refresh()
