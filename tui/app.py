"""`StromConsole`: the Textual operator console for a running strom.

It talks to the server through `tui.client` only. One worker follows the server's event
stream and publishes each event on `live`; screens subscribe to it. A lost stream is retried
with backoff, and the screens reload once it is back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.signal import Signal

from tui.client import ApiError, StromClient, Unauthorized
from tui.screens.cards import CardsScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.screens.keys import KeysScreen
from tui.screens.ledger import LedgerScreen
from tui.screens.log import LogScreen
from tui.screens.roaming import RoamingScreen
from tui.screens.sessions import SessionsScreen
from tui.screens.sites import SitesScreen

LiveEvent = tuple[str, dict[str, Any]]


class StromConsole(App[None]):
    """The console; `client` must point at a server that accepts its token."""

    TITLE = "strom"
    CSS_PATH = "console.tcss"
    ENABLE_COMMAND_PALETTE = False
    MODES = {"dashboard": DashboardScreen, "sessions": SessionsScreen, "keys": KeysScreen,
             "ledger": LedgerScreen, "log": LogScreen, "cards": CardsScreen,
             "sites": SitesScreen, "roaming": RoamingScreen}
    # The nav bar under the header shows these; the footer keeps room for each screen's keys.
    BINDINGS = [
        Binding("d", "switch_mode('dashboard')", "Chargers", show=False),
        Binding("s", "switch_mode('sessions')", "Sessions", show=False),
        Binding("k", "switch_mode('keys')", "Keys", show=False),
        Binding("l", "switch_mode('ledger')", "Ledger", show=False),
        Binding("g", "switch_mode('log')", "Log", show=False),
        Binding("m", "switch_mode('cards')", "Cards", show=False),
        Binding("w", "switch_mode('sites')", "Sites (power)", show=False),
        Binding("R", "switch_mode('roaming')", "Roaming (OCPI)", show=False),
        Binding("question_mark", "help", "Help", show=False),
        Binding("q", "quit", "Quit", show=False),
    ]

    def __init__(self, client: StromClient, *, follow: bool = True,
                 retry_seconds: float = 1.0) -> None:
        super().__init__()
        self.client = client
        self.live: Signal[LiveEvent] = Signal(self, "live")
        self.log_lines: deque[dict[str, Any]] = deque(maxlen=2000)
        self.online = False
        self._follow = follow
        self._retry = retry_seconds

    async def on_mount(self) -> None:
        await self.switch_mode("dashboard")
        if self._follow:
            self.run_worker(self._follow_stream(), group="live", exclusive=True)

    async def on_unmount(self) -> None:
        await self.client.close()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def _follow_stream(self) -> None:
        """Publish the server's events; reconnect with backoff when the stream breaks."""
        delay, lost = self._retry, False
        while True:
            try:
                async for name, data in self.client.events():
                    if name == "ready":
                        self._online(True)
                        delay = self._retry
                        if lost:
                            lost = False
                            self.live.publish(("reconnected", {}))
                        continue
                    if name == "log":
                        self.log_lines.append(data)
                    self.live.publish((name, data))
            except Unauthorized as exc:
                self._online(False)
                self.notify(str(exc), severity="error", timeout=30)
                return
            except ApiError as exc:
                if not lost:
                    self.notify(f"{exc}; retrying", severity="warning", timeout=8)
            lost = True
            self._online(False)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)

    def _online(self, online: bool) -> None:
        self.online = online
        self.sub_title = "" if online else "not connected: retrying"
