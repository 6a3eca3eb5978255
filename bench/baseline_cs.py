"""The naive baseline: a central system as in the ocpp library's v1.6 example.

`websockets.serve` and the library's `ChargePoint` with `@on` handlers that store nothing and
call nobody: what the ocpp library and websockets cost by themselves. Unlike the example it
keeps a set of live connections (so the benchmark can count them) and logs nothing (the
example logs every frame at INFO, which would measure the terminal).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, RegistrationStatus
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol


def _now() -> str:
    return datetime.now(UTC).isoformat()


class BaselineChargePoint(ChargePoint):
    """Answers Boot, Heartbeat, StatusNotification and MeterValues, remembers nothing."""

    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str,
                **_: Any) -> call_result.BootNotification:
        return call_result.BootNotification(current_time=_now(), interval=300,
                                            status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status(self, connector_id: int, error_code: str, status: str,
                  **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]],
                        **_: Any) -> call_result.MeterValues:
        return call_result.MeterValues()


class BaselineCentralSystem:
    """`await start()`, then chargers connect to `url` + their id."""

    def __init__(self) -> None:
        self.connections: set[BaselineChargePoint] = set()
        self._server: Server | None = None
        logging.getLogger("ocpp").setLevel(logging.WARNING)

    async def start(self) -> None:
        self._server = await serve(self._on_connect, "127.0.0.1", 0,
                                   subprotocols=[Subprotocol("ocpp1.6")])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/"

    def connected_count(self) -> int:
        return len(self.connections)

    async def _on_connect(self, websocket: ServerConnection) -> None:
        if websocket.subprotocol is None:
            await websocket.close()
            return
        assert websocket.request is not None
        cp = BaselineChargePoint(websocket.request.path.strip("/"), websocket)
        self.connections.add(cp)
        try:
            await cp.start()
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(cp)
