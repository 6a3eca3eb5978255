"""One charger: facts, connectors, tariff edit, commands and its pay QR drawn in the terminal."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from strom import qr
from tui.format import kw, plain, sat, status
from tui.forms import Field, FormScreen, MessageScreen
from tui.screens.base import ConsoleScreen, nav_bar

# Tariff fields as the operator types them (sat), and their API names (msat, or minutes).
TARIFF_FIELDS = (
    ("price_msat_per_kwh", "Price per kWh (sat)", 1000),
    ("session_fee_msat", "Session fee (sat)", 1000),
    ("price_msat_per_minute", "Price per minute (sat)", 1000),
    ("grace_minutes", "Minutes before the per-minute price", 1),
    ("min_prepay_msat", "Smallest payment (sat)", 1000),
    ("max_prepay_msat", "Largest payment (sat)", 1000),
)


def parse_tariff(values: dict[str, Any]) -> dict[str, int]:
    """The form's sat values as the API's override; empty fields follow the default."""
    override: dict[str, int] = {}
    for name, label, scale in TARIFF_FIELDS:
        raw = str(values.get(name, "")).strip().replace(",", "")
        if not raw:
            continue
        try:
            amount = Decimal(raw) * scale
        except InvalidOperation:
            raise ValueError(f"{label}: {raw!r} is not a number") from None
        if amount < 0 or amount != amount.to_integral_value():
            raise ValueError(f"{label}: use a whole number of msat (at most 3 decimals)")
        override[name] = int(amount)
    return override


def _shown(value: int | None, scale: int) -> str:
    if value is None:
        return ""
    return f"{Decimal(value) / scale:f}".rstrip("0").rstrip(".") if scale != 1 else str(value)


def facts(cp: dict[str, Any]) -> Text:
    tariff = cp["tariff"]
    text = Text()
    text.append(f"{cp['id']}", style="bold")
    text.append(f" · {cp['name']} · ")
    text.append_text(status(cp["status"]))
    text.append(" (online)" if cp["connected"] else " (not connected)")
    text.append(f"\nnpub     {cp['npub'] or '-'}")
    text.append(f"\naddress  {cp['lud16']}")
    hardware = " ".join(x for x in (cp.get("vendor"), cp.get("model")) if x) or "unknown"
    if cp.get("firmware"):
        hardware += f" fw {cp['firmware']}"
    if cp.get("ocpp_protocol"):
        hardware += f" {cp['ocpp_protocol']}"
    text.append(f"\ncharger  {hardware}")
    fee = sat(tariff["session_fee_msat"]) if tariff["session_fee_msat"] else "no fee"
    override = "own prices" if cp["tariff_override"] else "default prices"
    text.append(f"\ntariff   {sat(tariff['price_msat_per_kwh'])}/kWh, {fee}")
    if tariff["price_msat_per_minute"]:
        text.append(f", {sat(tariff['price_msat_per_minute'])}/min")
    text.append(f" ({override})")
    text.append(f"\nnow      {kw(cp['power_w'])} · today {sat(cp['earned_today_msat'])}")
    return text


class ChargerScreen(ConsoleScreen):
    """One charger; its commands go to the charger over OCPP through the server."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("t", "tariff", "Tariff"),
        Binding("x", "reset", "Reset"),
        Binding("u", "unlock", "Unlock"),
        Binding("a", "availability", "Avail."),
        Binding("c", "trigger", "Status?"),
        Binding("p", "qr", "Pay QR"),
        Binding("f", "firmware", "Firmware", show=False),
        Binding("v", "cancel_reservation", "Cancel reservation", show=False),
    ]

    def __init__(self, cp_id: str) -> None:
        super().__init__()
        self.cp_id = cp_id
        self.cp: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield nav_bar("dashboard")
        yield Static("", id="facts")
        yield DataTable(id="connectors", cursor_type="row", zebra_stripes=True)
        yield Static("", id="result", classes="status-line")
        yield Footer()

    async def on_mount(self) -> None:
        await super().on_mount()
        self.title = f"Charger {self.cp_id}"
        table = self.query_one(DataTable)
        for key, label in (("id", "Connector"), ("status", "Status"), ("error", "Error"),
                           ("session", "Session")):
            table.add_column(label, key=key)
        await self.refresh_charger()

    async def refresh_charger(self) -> None:
        cp = await self.attempt(self.client.charge_point(self.cp_id))
        if cp is not None:
            self.show(cp)

    def show(self, cp: dict[str, Any]) -> None:
        self.cp = cp
        self.query_one("#facts", Static).update(facts(cp))
        table = self.query_one(DataTable)
        table.clear()
        by_connector = {s["connector_id"]: s for s in cp["sessions"]}
        for connector in cp["connectors"]:
            session = by_connector.get(connector["id"])
            table.add_row(Text(str(connector["id"])), status(connector["status"]),
                          plain(connector.get("error_code")),
                          plain(f"{session['state']} {session['id']}" if session else None),
                          key=str(connector["id"]))

    async def on_live(self, name: str, data: dict[str, Any]) -> None:
        if name == "charge_point" and data["id"] == self.cp_id:
            self.show(data)
        elif name == "reconnected":
            await self.refresh_charger()

    def _said(self, words: str) -> None:
        self.query_one("#result", Static).update(Text(words))

    async def _command(self, name: str, body: dict[str, Any], what: str) -> None:
        self._said(f"{what}: sent, waiting for the charger…")
        answer = await self.attempt(self.client.command(self.cp_id, name, body))
        self._said(f"{what}: charger answered {answer}" if answer else f"{what}: failed")

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tariff(self) -> None:
        override = (self.cp or {}).get("tariff_override") or {}
        fields = [Field(name, label, _shown(override.get(name), scale), placeholder="default")
                  for name, label, scale in TARIFF_FIELDS]
        self.app.push_screen(FormScreen(f"Tariff of {self.cp_id}", fields, "Save",
                                        note="Empty fields follow the default tariff."),
                             self._save_tariff)

    async def _save_tariff(self, values: dict[str, Any] | None) -> None:
        if values is None:
            return
        try:
            override = parse_tariff(values)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        if await self.attempt(self.client.set_tariff(self.cp_id, override), "tariff saved"):
            await self.refresh_charger()

    def action_reset(self) -> None:
        self.app.push_screen(FormScreen(
            f"Reset {self.cp_id}", [Field("hard", "Hard reset (power cycle)", checkbox=True)],
            "Reset", note="A reset ends running transactions."), self._reset)

    async def _reset(self, values: dict[str, Any] | None) -> None:
        if values is not None:
            kind = "Hard" if values["hard"] else "Soft"
            await self._command("reset", {"type": kind}, f"{kind} reset")

    def _connector_form(self, title: str, extra: list[Field], lowest: int) -> FormScreen:
        count = (self.cp or {}).get("num_connectors", 1)
        return FormScreen(title, [Field("connector", f"Connector ({lowest}-{count})", "1"),
                                  *extra], "Send")

    def _connector(self, values: dict[str, Any], lowest: int) -> int | None:
        raw = str(values["connector"]).strip()
        if not raw.isdigit() or not lowest <= int(raw) <= (self.cp or {}).get("num_connectors", 1):
            self.notify(f"connector {raw!r} does not exist", severity="error")
            return None
        return int(raw)

    def action_unlock(self) -> None:
        self.app.push_screen(self._connector_form("Unlock connector", [], 1), self._unlock)

    async def _unlock(self, values: dict[str, Any] | None) -> None:
        if values is not None and (connector := self._connector(values, 1)) is not None:
            await self._command("unlock", {"connector_id": connector}, f"Unlock {connector}")

    def action_cancel_reservation(self) -> None:
        self.app.push_screen(self._connector_form("Cancel the paid reservation (fee refunded)",
                                                  [], 1), self._cancel_reservation)

    async def _cancel_reservation(self, values: dict[str, Any] | None) -> None:
        if values is not None and (connector := self._connector(values, 1)) is not None:
            await self._command("cancel-reservation", {"connector_id": connector},
                                f"Cancel reservation {connector}")

    def action_availability(self) -> None:
        self.app.push_screen(self._connector_form(
            "Availability (0 = whole charger)",
            [Field("operative", "Available to drivers", checkbox=True, checked=True)], 0),
            self._availability)

    async def _availability(self, values: dict[str, Any] | None) -> None:
        if values is not None and (connector := self._connector(values, 0)) is not None:
            word = "operative" if values["operative"] else "inoperative"
            await self._command("availability", {"connector_id": connector,
                                                 "operative": bool(values["operative"])},
                                f"Connector {connector} {word}")

    async def action_trigger(self) -> None:
        await self._command("trigger", {"message": "StatusNotification"}, "Status request")

    def action_qr(self) -> None:
        if self.cp is None:
            return
        body = qr.terminal(self.cp["lnurl"]) + f"\n{self.cp['lud16']}"
        self.app.push_screen(MessageScreen(f"Pay {self.cp['name']} (LNURL)", body))

    async def action_firmware(self) -> None:
        report = await self.attempt(self.client.firmware_report(self.cp_id))
        if report is not None:
            self.app.push_screen(MessageScreen(f"Firmware and logs of {self.cp_id}",
                                               firmware_text(report)))


def firmware_text(report: dict[str, list[dict[str, Any]]]) -> str:
    """Updates with their status notifications, uploads, security events: newest first."""
    lines = ["Firmware updates (strom firmware update):"]
    lines += [f"  #{u['id']} file {u['file_id']}: "
              + " → ".join(h["status"] for h in u["history"]) for u in report["updates"]]
    lines += ["  none yet"] * (not report["updates"])
    lines.append("Diagnostics and logs (strom diagnostics request):")
    lines += [f"  #{d['id']} {d['kind']}: {d['status']}"
              + (f", {d['file']['name']} ({d['file']['size']} bytes)" if d["file"] else "")
              for d in report["diagnostics"]]
    lines += ["  none yet"] * (not report["diagnostics"])
    lines.append("Security events:")
    lines += [f"  {e['at'][:19]} {e['type']}" for e in report["security_events"]]
    lines += ["  none"] * (not report["security_events"])
    return "\n".join(lines)
