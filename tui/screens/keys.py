"""Keys: each charger's nostr identity — show npub, generate, import, encrypt, rotate.

Secret keys are typed into masked fields and sent to the server; none is ever shown.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from tui.format import plain
from tui.forms import Field, FormScreen, MessageScreen
from tui.screens.base import ConsoleScreen, cursor_key, nav_bar, refill

SERVER_PASSWORD = "Leave the password empty to use the server's STROM_KEY_PASSWORD."


def short_npub(npub: str | None) -> str:
    return "-" if not npub else f"{npub[:16]}…{npub[-6:]}"


def password_body(values: dict[str, Any]) -> dict[str, Any]:
    password = str(values.get("password") or "")
    return {"password": password} if password else {}


def key_row(cp_id: str, key: dict[str, Any] | None) -> tuple[Text, ...]:
    rest = "no key" if key is None else ("ncryptsec" if key["encrypted"] else "nsec")
    if key is not None and not key["charge_point_exists"]:
        rest += " (no charger)"
    return (plain(cp_id), Text(rest, style="red" if key is None else ""),
            Text(short_npub(key["npub"] if key else None)))


class KeysScreen(ConsoleScreen):
    """One row per charger (and per key whose charger is gone)."""

    BINDINGS = [
        Binding("v", "show", "View npub"),
        Binding("n", "generate", "Generate"),
        Binding("i", "import_key", "Import"),
        Binding("e", "encrypt", "Encrypt"),
        Binding("o", "rotate", "Rotate"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield nav_bar("keys")
        yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)
        yield Static("", id="keys-note", classes="status-line")
        yield Footer()

    async def on_mount(self) -> None:
        await super().on_mount()
        self.title = "Nostr keys"
        table = self.query_one(DataTable)
        for key, label in (("cp", "Charger"), ("rest", "At rest"), ("npub", "npub")):
            table.add_column(label, key=key)
        await self.action_refresh()

    async def action_refresh(self) -> None:
        cps = await self.attempt(self.client.charge_points())
        keys = await self.attempt(self.client.keys()) if cps is not None else None
        if cps is None or keys is None:
            return
        self.keys = {k["cp_id"]: k for k in keys}
        refill(self.query_one(DataTable), (
            (cp_id, key_row(cp_id, self.keys.get(cp_id)))
            for cp_id in sorted({cp["id"] for cp in cps} | set(self.keys))))
        encrypted = sum(1 for k in keys if k["encrypted"])
        self.query_one("#keys-note", Static).update(
            f"{len(keys)} keys, {encrypted} encrypted at rest (NIP-49)")

    def _selected(self) -> str | None:
        key = cursor_key(self.query_one(DataTable))
        if key is None:
            self.notify("no charger selected", severity="warning")
        return key

    def on_data_table_row_selected(self) -> None:
        self.action_show()

    def action_show(self) -> None:
        cp_id = self._selected()
        key = self.keys.get(cp_id or "")
        if cp_id is None:
            return
        if key is None:
            self.notify(f"{cp_id} has no key; generate or import one", severity="warning")
            return
        body = (f"npub    {key['npub'] or 'locked (encrypted, npub unknown)'}\n"
                f"hex     {key['pubkey'] or '-'}\n"
                f"at rest {'ncryptsec (NIP-49)' if key['encrypted'] else 'nsec (not encrypted)'}")
        self.app.push_screen(MessageScreen(f"Nostr identity of {cp_id}", body, wide=True))

    async def _act(self, cp_id: str, action: str, body: dict[str, Any], done: str) -> None:
        answer = await self.attempt(self.client.key_action(cp_id, action, body))
        if answer is not None:
            self.notify(f"{done}: {answer['npub']}")
            await self.action_refresh()

    def action_generate(self) -> None:
        if (cp_id := self._selected()) is None:
            return

        async def submit(values: dict[str, Any] | None) -> None:
            if values is not None:
                body = {"encrypt": bool(values["encrypt"]), **password_body(values)}
                await self._act(cp_id, "generate", body, f"{cp_id} has a new key")

        self.app.push_screen(FormScreen(
            f"Generate a key for {cp_id}",
            [Field("encrypt", "Encrypt at rest (NIP-49)", checkbox=True),
             Field("password", "Password", password=True)], "Generate",
            note=SERVER_PASSWORD), submit)

    def action_import_key(self) -> None:
        if (cp_id := self._selected()) is None:
            return

        async def submit(values: dict[str, Any] | None) -> None:
            if values is None:
                return
            body = {"secret": str(values["secret"]).strip(), "encrypt": bool(values["encrypt"]),
                    "replace": bool(values["replace"]), **password_body(values)}
            await self._act(cp_id, "import", body, f"{cp_id} imported")

        self.app.push_screen(FormScreen(
            f"Import a key for {cp_id}",
            [Field("secret", "Secret key: nsec, hex or ncryptsec", password=True),
             Field("password", "Password (ncryptsec, or to encrypt)", password=True),
             Field("encrypt", "Encrypt at rest", checkbox=True),
             Field("replace", "Replace the existing key", checkbox=True)], "Import"), submit)

    def action_encrypt(self) -> None:
        if (cp_id := self._selected()) is None:
            return

        async def submit(values: dict[str, Any] | None) -> None:
            if values is not None:
                await self._act(cp_id, "encrypt", password_body(values), f"{cp_id} encrypted")

        self.app.push_screen(FormScreen(
            f"Encrypt the key of {cp_id}", [Field("password", "Password", password=True)],
            "Encrypt", note="strom then needs this password (STROM_KEY_PASSWORD) to start. "
            + SERVER_PASSWORD), submit)

    async def action_rotate(self) -> None:
        if (cp_id := self._selected()) is None:
            return
        info = await self.attempt(self.client.key(cp_id))
        if info is None:
            return

        async def submit(values: dict[str, Any] | None) -> None:
            if values is None:
                return
            answer = await self.attempt(self.client.key_action(
                cp_id, "rotate", {"confirm": True, **password_body(values)}))
            if answer is not None:
                await self.action_refresh()
                self.app.push_screen(MessageScreen(
                    f"New key for {cp_id}",
                    f"old {answer['previous_npub']}\nnew {answer['npub']}\n\n{answer['warning']}",
                    wide=True))

        fields = [Field("password", "Password (the key is encrypted)", password=True)] \
            if info["encrypted"] else []
        self.app.push_screen(FormScreen(f"Rotate the key of {cp_id}?", fields, "Rotate",
                                        note=info["rotate_warning"]), submit)
