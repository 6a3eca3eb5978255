"""What every console screen shares: the API client, live updates and error reporting."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from rich.text import Text
from textual.screen import Screen
from textual.widgets import DataTable, Static

from tui.client import ApiError, StromClient

if TYPE_CHECKING:
    from tui.app import StromConsole

T = TypeVar("T")


class ConsoleScreen(Screen[None]):
    """A screen of the console; `on_live(name, data)` receives the server's live events."""

    @property
    def console(self) -> StromConsole:
        return cast("StromConsole", self.app)

    @property
    def client(self) -> StromClient:
        return self.console.client

    async def on_mount(self) -> None:
        # Textual calls every class's on_mount along the MRO, so this runs twice: first from
        # the screen's own (which calls it before its first load), then on its own. Subscribe
        # once, else each live event is handled twice (the log showed every line twice).
        self.console.live.unsubscribe(self)
        self.console.live.subscribe(self, self._live)

    async def _live(self, event: tuple[str, dict[str, Any]]) -> None:
        await self.on_live(*event)

    async def on_live(self, name: str, data: dict[str, Any]) -> None:
        """A live event from the server: `charge_point`, `session`, `log` or `reconnected`."""

    async def attempt(self, work: Awaitable[T], done: str | None = None) -> T | None:
        """Await `work`; an API failure becomes an error notification and None."""
        try:
            result = await work
        except ApiError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return None
        if done:
            self.notify(done)
        return result


def restore_cursor(table: DataTable[Any], key: str | None) -> None:
    """Put the cursor back on the row it was on before the table was refilled."""
    keys = [row.key.value for row in table.ordered_rows]
    if key in keys:
        table.move_cursor(row=keys.index(key))


def refill(table: DataTable[Any], rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
    """Replace the table's rows (`(key, cells)` each), the cursor staying on its row."""
    selected = cursor_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    restore_cursor(table, selected)


def cursor_key(table: DataTable[Any]) -> str | None:
    if not table.row_count:
        return None
    value = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    return str(value) if value is not None else None


TABS = (("dashboard", "d", "Chargers"), ("sessions", "s", "Sessions"), ("keys", "k", "Keys"),
        ("ledger", "l", "Ledger"), ("log", "g", "Log"))


def nav_bar(current: str) -> Static:
    """The line of top-level screens and their keys, the current one highlighted."""
    text = Text()
    for mode, key, label in TABS:
        style = "reverse bold" if mode == current else ""
        text.append(f" {label} ", style=style)
        text.append(f"{key} ", style="dim")
        text.append("│", style="dim")
    text.append(" ? help  q quit", style="dim")
    return Static(text, classes="nav")
