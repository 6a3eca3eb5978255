"""A second central system for passthrough tests: the ocpp library's v16 `ChargePoint` on the
CSMS side inside `websockets.serve`, as a fleet backend runs it. It accepts one RFID tag,
numbers its transactions from 2 (so strom's own ids, from 1, meet its ids), and records every
raw frame it received and sent."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call
from ocpp.v16 import call_result as result
from ocpp.v16.enums import Action
from websockets.asyncio.server import Server, ServerConnection, serve

from strom.timeutil import iso

OWNER_TAG = "RFID-OWNER-1"
BACKEND_LOG = "tests.backend"  # the backend's own log (it sees the password, strom must not)
PASSWORD = "backend secret"


class Recording:
    """A websocket as the library sees it, writing down every frame both ways."""

    def __init__(self, ws: Any, log: list[tuple[str, str]]) -> None:
        self._ws, self.log = ws, log

    async def recv(self) -> str:
        raw = await self._ws.recv()
        self.log.append(("in", raw))
        return raw

    async def send(self, raw: str) -> None:
        self.log.append(("out", raw))
        await self._ws.send(raw)

    async def close(self, *args: Any) -> None:
        await self._ws.close(*args)


class BackendCharger(ChargePoint):
    """The backend's view of one charger: the library's handlers, answers on the record."""

    def __init__(self, cp_id: str, ws: Any, backend: Backend) -> None:
        super().__init__(cp_id, ws, response_timeout=5)
        self._backend = backend

    @on(Action.boot_notification)
    def on_boot(self, **_: Any) -> result.BootNotification:
        return result.BootNotification(current_time=iso(), interval=300, status="Accepted")

    @on(Action.heartbeat)
    def on_heartbeat(self) -> result.Heartbeat:
        return result.Heartbeat(current_time=iso())

    @on(Action.status_notification)
    def on_status(self, **_: Any) -> result.StatusNotification:
        return result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> result.Authorize:
        return result.Authorize(id_tag_info={"status": self._backend.status(id_tag)})

    @on(Action.start_transaction)
    def on_start(self, id_tag: str, **_: Any) -> result.StartTransaction:
        return result.StartTransaction(transaction_id=next(self._backend.ids),
                                       id_tag_info={"status": self._backend.status(id_tag)})

    @on(Action.stop_transaction)
    def on_stop(self, **_: Any) -> result.StopTransaction:
        return result.StopTransaction()

    @on(Action.meter_values)
    def on_meter(self, **_: Any) -> result.MeterValues:
        return result.MeterValues()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> result.DataTransfer:
        return result.DataTransfer(status="Accepted", data=f"hello from {vendor_id}'s backend")


@dataclass
class Backend:
    """The CSMS. `frames` holds what it got and sent; `charger` is the connected charger."""

    ids: itertools.count = field(default_factory=lambda: itertools.count(2))
    frames: list[tuple[str, str]] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    charger: Any = None  # the library ChargePoint of the connected charger
    server: Server | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    subprotocol = "ocpp1.6"

    def saw(self, text: str) -> bool:
        """Whether `text` is in any frame the backend received."""
        return any(text in raw for way, raw in self.frames if way == "in")

    def status(self, id_tag: str) -> str:
        return "Accepted" if id_tag == OWNER_TAG else "Invalid"

    async def start(self, port: int = 0) -> None:
        self.server = await serve(self._serve, "127.0.0.1", port, subprotocols=[self.subprotocol],  # type: ignore[list-item]
                                  logger=logging.getLogger(BACKEND_LOG))
        self.port = int(next(iter(self.server.sockets)).getsockname()[1])

    async def stop(self) -> None:
        """The backend goes down: its server and every connection."""
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        self.connected.clear()
        self.charger = None

    def url(self, cp_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{cp_id}"

    async def _serve(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.auth_headers.append(ws.request.headers.get("Authorization"))
        cp_id = ws.request.path.rsplit("/", 1)[-1]
        self.charger = self._charger(cp_id, Recording(ws, self.frames))
        self.connected.set()
        try:
            await self.charger.start()
        except Exception:  # the connection closed
            pass

    def _charger(self, cp_id: str, ws: Recording) -> Any:
        return BackendCharger(cp_id, ws, self)

    def received(self, action: str | None = None) -> list[list[Any]]:
        """The CALLs the backend got, parsed, in order (one action only if given)."""
        calls = [json.loads(raw) for way, raw in self.frames if way == "in"]
        return [c for c in calls if c[0] == 2 and (action is None or c[2] == action)]

    async def remote_start(self, connector: int, id_tag: str = OWNER_TAG) -> Any:
        assert self.charger is not None
        return await self.charger.call(call.RemoteStartTransaction(id_tag=id_tag,
                                                                   connector_id=connector))
