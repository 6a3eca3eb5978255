"""Help: what the console is and every key it knows."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

KEYS = (
    ("Everywhere", (("d s k l g", "chargers, sessions, keys, ledger, log"),
                    ("?", "this help"), ("q", "quit"))),
    ("Chargers", (("↑ ↓ Enter", "open a charger"), ("r", "refresh"))),
    ("A charger", (("t", "edit its tariff (empty = default)"), ("x", "reset (soft or hard)"),
                   ("u", "unlock a connector"), ("a", "availability of a connector"),
                   ("c", "ask the charger for its status"), ("p", "pay QR (LNURL)"),
                   ("f", "firmware, diagnostics, security events"),
                   ("v", "cancel a paid reservation (fee refunded)"), ("Esc", "back"))),
    ("Sessions", (("f", "filter by charger (state: the menu)"), ("Enter", "details"),
                  ("x", "stop (in details)"), ("n b", "next / previous page of 100"))),
    ("Keys", (("v Enter", "show npub"), ("n", "generate"), ("i", "import nsec/ncryptsec"),
              ("e", "encrypt at rest"), ("o", "rotate (new identity)"))),
    ("Ledger", (("c", "check the money invariant"), ("r", "refresh"))),
    ("Cards (m)", (("a", "register an RFID card"), ("x", "remove the selected card"),
                   ("t", "top up (or open) an account"))),
    ("Sites (w)", (("r", "refresh: each site's limit and every session's share"),)),
    ("Roaming (R)", (("a", "add an eMSP: its token A, shown once"),
                     ("x", "remove the selected party"))),
)


def keys_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for section, entries in KEYS:
        table.add_row(f"[u]{section}[/u]", "")
        for keys, what in entries:
            table.add_row(keys, what)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("strom operator console: help", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static("The console talks to the running strom over its admin API. "
                             "Chargers, sessions and the log update live.\n")
                yield Static(keys_table())
            yield Label("↑ ↓ scroll · Esc closes", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
