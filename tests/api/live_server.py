"""A real strom running in a thread of its own, for synchronous clients.

Schemathesis (requests) and Textual's snapshot runner (`App.run`) each run their own event
loop or none, so the server cannot share the test's loop. Here it runs on a loop in a
background thread; `call` runs a coroutine on that loop (to seed data through the services).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from strom.app import StromApp
from strom.config import Settings
from strom.container import Services
from strom.logsetup import install_bus_log_handler

T = TypeVar("T")


class LiveServer:
    """`with LiveServer(settings, data_dir) as server:` — `server.http_url`, `server.token`.

    With `bus_log` (the default) its log lines go to the event bus, as `strom run` does.
    """

    def __init__(self, settings: Settings, data_dir: Path, *, bus_log: bool = True) -> None:
        self._settings = settings
        self._bus_log = bus_log
        self.data_dir = data_dir
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="strom-live", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.app: StromApp | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread by __enter__
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        async with StromApp(self._settings, self.data_dir) as app:
            assert app.services is not None
            remove_handler = (install_bus_log_handler(app.services.bus) if self._bus_log
                              else lambda: None)
            self.app, self._loop, self._stop = app, asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                remove_handler()

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"strom did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    @property
    def services(self) -> Services:
        assert self.app is not None and self.app.services is not None
        return self.app.services

    @property
    def http_url(self) -> str:
        assert self.app is not None
        return self.app.http_url

    @property
    def token(self) -> str:
        return self.services.admin_token

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30) -> T:
        """Run `make()` on the server's loop and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout)
