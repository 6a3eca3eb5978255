"""Sessions: filter by state and charger, open one, stop it as the operator, see its refund."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from tui.client import ApiError
from tui.format import kw, kwh, plain, refund_state, sat
from tui.screens.base import ConsoleScreen, nav_bar, refill

if TYPE_CHECKING:
    from tui.app import StromConsole

STATES = ("pending_payment", "paid", "starting", "charging", "stopping", "stopping_unconfirmed",
          "stopped", "refunded", "settled", "failed")
STOPPABLE = ("paid", "starting", "charging", "stopping")
PAGE = 100


def amount(msat: int) -> Text:
    return Text(f"{round(msat / 1000):,}", justify="right")


def details(s: dict[str, Any]) -> Text:
    lines = [
        ("charger", f"{s['cp_id']} connector {s['connector_id'] or '-'}"),
        ("state", s["state"] + (f" ({s['stop_reason']})" if s.get("stop_reason") else "")),
        ("paid", sat(s["paid_msat"])), ("used", sat(s["consumed_msat"])),
        ("refund", refund_state(s)),
        ("energy", f"{kwh(s['energy_wh'])} · power {kw(s.get('power_w'))}"),
        ("created", s.get("created_at")), ("started", s.get("started_at")),
        ("stopped", s.get("stopped_at")),
    ]
    if s.get("failure_reason"):
        lines.append(("failure", s["failure_reason"]))
    if s.get("held_msat"):
        lines.append(("held", f"{sat(s['held_msat'])} until the charger confirms the stop"))
    if s.get("unbilled_msat"):
        lines.append(("unbilled", f"{kwh(s.get('unbilled_wh') or 0)} beyond the payment "
                                  f"({sat(s['unbilled_msat'])})"))
    text = Text()
    for label, value in lines:
        text.append(f"{label:<9}", style="dim")
        text.append(f"{value if value is not None else '-'}\n")
    return text


class SessionScreen(ModalScreen[bool]):
    """One session; dismissed with True when the operator stopped it."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("x", "stop", "Stop")]

    def __init__(self, session: dict[str, Any]) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(Text(f"Session {self.session['id']}"), classes="dialog-title")
            yield Static(details(self.session), id="session-details")
            with Horizontal(classes="dialog-buttons"):
                if self.session["state"] in STOPPABLE:
                    yield Button("Stop (x)", variant="error", id="stop")
                yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop":
            self.action_stop()
        else:
            self.dismiss(False)

    def action_close(self) -> None:
        self.dismiss(False)

    def action_stop(self) -> None:
        if self.session["state"] in STOPPABLE:
            # The server waits for the charger's StopTransaction; the console stays usable.
            self.run_worker(self._stop(), exclusive=True)

    async def _stop(self) -> None:
        self.notify("stopping: waiting for the charger to confirm…")
        client = cast("StromConsole", self.app).client
        try:
            stopped = await client.stop_session(self.session["id"])
        except ApiError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.notify(f"session {stopped['id']} {stopped['state']}: {refund_state(stopped)}")
        self.dismiss(True)


class SessionsScreen(ConsoleScreen):
    """The newest sessions first; Enter opens one."""

    BINDINGS = [Binding("r", "refresh", "Refresh"), Binding("f", "focus_filter", "Filter"),
                Binding("n", "next_page", "Next page"),
                Binding("b", "previous_page", "Previous page")]

    def __init__(self) -> None:
        super().__init__()
        self.page_offset = 0
        self.total = 0
        self.items: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield nav_bar("sessions")
        with Horizontal(id="filters"):
            yield Select([(s, s) for s in STATES], prompt="any state", id="state", compact=True)
            yield Input(placeholder="filter by charger id (f)", id="cp-filter", compact=True)
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield Static("", id="paging", classes="status-line")
        yield Footer()

    async def on_mount(self) -> None:
        await super().on_mount()
        self.title = "Sessions"
        table = self.query_one(DataTable)
        for key, label in (("id", "Session"), ("cp", "Charger"), ("state", "State"),
                           ("paid", "Paid sat"), ("used", "Used sat"),
                           ("refund", "Refund sat")):
            table.add_column(label, key=key)
        await self.action_refresh()
        table.focus()

    def _filters(self) -> tuple[str | None, str | None]:
        state = self.query_one("#state", Select).value
        cp_id = self.query_one("#cp-filter", Input).value.strip()
        return (state if isinstance(state, str) else None), (cp_id or None)

    async def action_refresh(self) -> None:
        state, cp_id = self._filters()
        page = await self.attempt(self.client.sessions(state=state, cp_id=cp_id, limit=PAGE,
                                                       offset=self.page_offset))
        if page is None:
            return
        self.total = page["total"]
        self.items = {s["id"]: s for s in page["items"]}
        refill(self.query_one(DataTable), (
            (s["id"], (plain(s["id"]), plain(s["cp_id"]), Text(s["state"]), amount(s["paid_msat"]),
                       amount(s["consumed_msat"]), amount(s["refundable_msat"])))
            for s in page["items"]))
        shown = len(page["items"])
        self.query_one("#paging", Static).update(
            f"{self.page_offset + 1}-{self.page_offset + shown} of {self.total}" if shown
            else "No sessions match.")

    async def on_select_changed(self) -> None:
        self.page_offset = 0
        await self.action_refresh()

    async def on_input_submitted(self) -> None:
        self.page_offset = 0
        await self.action_refresh()
        self.query_one(DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#cp-filter", Input).focus()

    async def action_next_page(self) -> None:
        if self.page_offset + PAGE < self.total:
            self.page_offset += PAGE
            await self.action_refresh()

    async def action_previous_page(self) -> None:
        if self.page_offset:
            self.page_offset = max(0, self.page_offset - PAGE)
            await self.action_refresh()

    async def on_live(self, name: str, data: dict[str, Any]) -> None:
        if name == "reconnected" or (name == "session" and data["id"] not in self.items
                                     and self.page_offset == 0):
            await self.action_refresh()
        elif name == "session":
            self.items[data["id"]] = data
            table = self.query_one(DataTable)
            for key, cell in (("state", Text(data["state"])), ("paid", amount(data["paid_msat"])),
                              ("used", amount(data["consumed_msat"])),
                              ("refund", amount(data["refundable_msat"]))):
                table.update_cell(data["id"], key, cell, update_width=True)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        session = self.items.get(str(event.row_key.value))
        if session is not None:
            self.app.push_screen(SessionScreen(session), self._after_detail)

    async def _after_detail(self, stopped: bool | None) -> None:
        if stopped:
            await self.action_refresh()
