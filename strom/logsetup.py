"""Logging: one readable line per record on stderr, and the same lines on the event bus."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable

from strom.events import EventBus, LogLine


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(
        logging, os.environ.get("STROM_LOG_LEVEL", "INFO").upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    # The ocpp library logs every frame at INFO; that is debug detail for an operator.
    logging.getLogger("ocpp").setLevel(max(level, logging.WARNING))
    logging.getLogger("websockets").setLevel(max(level, logging.WARNING))


class BusLogHandler(logging.Handler):
    """Publishes each log record as a `LogLine` on the bus (the TUI's live log).

    Only the message goes out, never a traceback. Records from other threads are handed to
    the loop; a record logged while publishing (the bus warning about a slow subscriber) is
    not published again, so the handler cannot feed itself.
    """

    MAX_MESSAGE = 2000

    def __init__(self, bus: EventBus, loop: asyncio.AbstractEventLoop,
                 level: int = logging.INFO) -> None:
        super().__init__(level)
        self._bus = bus
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._local, "busy", False):
            return
        self._local.busy = True
        try:
            line = LogLine(record.levelname, record.name, record.getMessage()[:self.MAX_MESSAGE])
            if threading.get_ident() == self._loop_thread:
                self._bus.publish(line)
            elif not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._bus.publish, line)
        except Exception:
            self.handleError(record)
        finally:
            self._local.busy = False


def install_bus_log_handler(bus: EventBus, level: int = logging.INFO) -> Callable[[], None]:
    """Attach a `BusLogHandler` to the root logger (call on the loop); returns its remover."""
    handler = BusLogHandler(bus, asyncio.get_running_loop(), level)
    root = logging.getLogger()
    root.addHandler(handler)
    return lambda: root.removeHandler(handler)
