"""A minimal central system built on the ocpp library, for the simulator's tests.

Everything goes over real websockets on 127.0.0.1; the central system below is the ocpp
library's own `ChargePoint` (server side), recording each call in arrival order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from strom.simulator import SimulatedChargePoint

FAST = {"meter_interval": 0.05, "speed": 60.0, "finish_delay": 0.2, "reconnect_min": 0.05,
        "reconnect_max": 0.2, "response_timeout": 5.0, "seed": 7}


class _CsSide(ChargePoint):
    """Server side of one charger connection: answers and records every call."""

    def __init__(self, cp_id: str, ws: ServerConnection, cs: CentralSystem) -> None:
        super().__init__(cp_id, ws)
        self.cs = cs

    def _log(self, action: str, payload: dict[str, Any]) -> None:
        self.cs.log.append((self.id, action, payload))

    @on(Action.boot_notification)
    def on_boot(self, **kw: Any) -> call_result.BootNotification:
        self._log("BootNotification", kw)
        status = self.cs.boot_answers.pop(0) if self.cs.boot_answers else "Accepted"
        return call_result.BootNotification(current_time=datetime.now(UTC).isoformat(),
                                            interval=self.cs.interval, status=status)

    @on(Action.heartbeat)
    def on_heartbeat(self, **kw: Any) -> call_result.Heartbeat:
        self._log("Heartbeat", kw)
        return call_result.Heartbeat(current_time=datetime.now(UTC).isoformat())

    @on(Action.status_notification)
    def on_status(self, **kw: Any) -> call_result.StatusNotification:
        self._log("StatusNotification", kw)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, **kw: Any) -> call_result.Authorize:
        self._log("Authorize", kw)
        return call_result.Authorize(id_tag_info={"status": self.cs.id_tag_status})

    @on(Action.start_transaction)
    def on_start_tx(self, **kw: Any) -> call_result.StartTransaction:
        self._log("StartTransaction", kw)
        self.cs.next_tx += 1
        return call_result.StartTransaction(transaction_id=self.cs.next_tx,
                                            id_tag_info={"status": self.cs.id_tag_status})

    @on(Action.meter_values)
    def on_meter(self, **kw: Any) -> call_result.MeterValues:
        self._log("MeterValues", kw)
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    def on_stop_tx(self, **kw: Any) -> call_result.StopTransaction:
        self._log("StopTransaction", kw)
        return call_result.StopTransaction(id_tag_info={"status": "Accepted"})


class CentralSystem:
    """Minimal OCPP 1.6J central system on a free loopback port."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.log: list[tuple[str, str, dict[str, Any]]] = []
        self.sides: dict[str, _CsSide] = {}
        self.requests: list[Request] = []
        self.subprotocols: list[str | None] = []
        self.boot_answers: list[str] = []
        self.interval = 60
        self.id_tag_status = "Accepted"
        self.refuse_with: int | None = None
        self.next_tx = 100

    async def __aenter__(self) -> CentralSystem:
        self._server = await serve(self._handle, "127.0.0.1", self.port,
                                   subprotocols=[Subprotocol("ocpp1.6")],
                                   process_request=self._process_request)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request)
        if self.refuse_with is not None:
            return connection.respond(self.refuse_with, "no\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        cp_id = ws.request.path.rsplit("/", 1)[-1]
        self.subprotocols.append(ws.subprotocol)
        side = self.sides[cp_id] = _CsSide(cp_id, ws, self)
        try:
            await side.start()
        except ConnectionClosed:
            self.log.append((cp_id, "closed", {"code": ws.close_code}))

    def of(self, action: str, cp_id: str | None = None) -> list[dict[str, Any]]:
        return [p for c, a, p in self.log if a == action and cp_id in (None, c)]

    def actions(self) -> list[str]:
        return [a for _, a, _ in self.log]

    async def until(self, predicate: Callable[[], bool], seconds: float = 10.0) -> None:
        async with asyncio.timeout(seconds):
            # Polls: predicates also look at the simulator's side, which has no hook here.
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    async def call(self, cp_id: str, payload: Any) -> Any:
        return await self.sides[cp_id].call(payload)


def statuses_of(cs: CentralSystem, connector: int) -> list[str]:
    return [s["status"] for s in cs.of("StatusNotification") if s["connector_id"] == connector]


def energy(sample: dict[str, Any], measurand: str = "Energy.Active.Import.Register") -> float:
    values = sample["meter_value"][0]["sampled_value"]
    return float(next(v["value"] for v in values if v["measurand"] == measurand))


async def start_charging(cs: CentralSystem, sim: SimulatedChargePoint, connector: int = 1,
                         id_tag: str = "TAG-1") -> int:
    answer = await cs.call(sim.cp_id, call.RemoteStartTransaction(id_tag=id_tag,
                                                                  connector_id=connector))
    assert answer.status == "Accepted"
    await sim.wait_for(lambda: sim.transaction_id(connector) is not None)
    tx_id = sim.transaction_id(connector)
    assert tx_id is not None
    return tx_id
