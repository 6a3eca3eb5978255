"""Live log: the server's log lines as they happen (since the console started)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, RichLog

from tui.screens.base import ConsoleScreen, nav_bar

LEVEL_STYLE = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "bold red",
               "CRITICAL": "bold red reverse"}


def line(entry: dict[str, Any]) -> Text:
    text = Text()
    text.append(f"{entry['level']:<7} ", style=LEVEL_STYLE.get(entry["level"], ""))
    text.append(f"{entry['logger']}: ", style="dim")
    text.append(entry["message"])
    return text


class LogScreen(ConsoleScreen):
    BINDINGS = [Binding("c", "clear", "Clear")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield nav_bar("log")
        yield RichLog(id="log", wrap=True, max_lines=2000)
        yield Footer()

    async def on_mount(self) -> None:
        await super().on_mount()
        self.title = "Live log"
        log = self.query_one(RichLog)
        for entry in self.console.log_lines:
            log.write(line(entry))

    async def on_live(self, name: str, data: dict[str, Any]) -> None:
        if name == "log":
            self.query_one(RichLog).write(line(data))

    def action_clear(self) -> None:
        self.query_one(RichLog).clear()
        self.console.log_lines.clear()
