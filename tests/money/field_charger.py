"""A charger that behaves like real ones do in the field, driven step by step by a test.

It speaks OCPP 1.6J through the ocpp library's own ChargePoint (not our simulator), can go
offline and come back (a new websocket, its transaction still running), answer RemoteStop
`Rejected`, start only when told (a late StartTransaction), keep charging after its idTag
was answered `Invalid` (StopTransactionOnInvalidId=false) and take its time to answer a
TriggerMessage (`trigger_gate`: strom's next call waits its turn).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect

from strom.timeutil import iso


class _Link(ChargePoint):
    """One websocket connection of a `FieldCharger`."""

    def __init__(self, charger: FieldCharger, ws: ClientConnection) -> None:
        super().__init__(charger.cp_id, ws, response_timeout=10)
        self.charger = charger

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, connector_id: int | None = None,
                              **_: Any) -> call_result.RemoteStartTransaction:
        self.charger.start_requests.append(id_tag)
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        self.charger.stop_requests.append(transaction_id)
        return call_result.RemoteStopTransaction(status=self.charger.stop_answer)

    @on(Action.trigger_message)
    async def on_trigger(self, requested_message: str,
                         connector_id: int | None = None) -> call_result.TriggerMessage:
        self.charger.triggers.append(requested_message)
        if self.charger.trigger_gate is not None:  # holds strom's next call behind this one
            await self.charger.trigger_gate.wait()
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    async def after_trigger(self, requested_message: str, connector_id: int | None = None) -> None:
        if requested_message == "StatusNotification":  # what its connector shows now
            await self.charger.status(self.charger.shown, connector_id or 1)


class FieldCharger:
    """One connector; the test says when it starts, meters, stops, drops and comes back."""

    def __init__(self, cp_id: str, url: str) -> None:
        self.cp_id = cp_id
        self.url = url  # the central system's base URL, ending in /ocpp/
        self.stop_answer = "Accepted"
        self.start_requests: list[str] = []
        self.stop_requests: list[int] = []
        self.triggers: list[str] = []
        self.shown = "Available"  # the connector's status, as a StatusNotification says
        self.trigger_gate: asyncio.Event | None = None  # set: TriggerMessage answered
        self._ws: ClientConnection | None = None
        self._link: _Link | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, *, status: str | None = "Available") -> None:
        """Boot, then tell the connector's status (None: say nothing, as some chargers do)."""
        self._ws = await connect(self.url + self.cp_id, subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        self._link = _Link(self, self._ws)
        self._task = asyncio.create_task(self._link.start())
        await self.call(call.BootNotification(charge_point_vendor="Field",
                                              charge_point_model="Real 22"))
        if status is not None:
            await self.status(status)

    async def drop(self) -> None:
        """The network is gone: the socket closes, the charger keeps its state."""
        assert self._ws is not None and self._task is not None
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._ws.close()
        self._ws = self._link = self._task = None

    async def call(self, payload: Any) -> Any:
        assert self._link is not None, "offline"
        return await self._link.call(payload)

    async def status(self, status: str, connector: int = 1) -> None:
        self.shown = status
        await self.call(call.StatusNotification(connector_id=connector, error_code="NoError",
                                                status=status))

    async def start(self, id_tag: str, meter_start: int = 0) -> tuple[int, str]:
        """StartTransaction; returns (transactionId, idTagInfo status)."""
        result = await self.call(call.StartTransaction(connector_id=1, id_tag=id_tag,
                                                       meter_start=meter_start, timestamp=iso()))
        return result.transaction_id, result.id_tag_info["status"]

    async def meter(self, transaction_id: int, register_wh: float, power_w: float) -> None:
        await self.call(call.MeterValues(
            connector_id=1, transaction_id=transaction_id,
            meter_value=[{"timestamp": iso(), "sampled_value": [
                {"value": f"{register_wh:.0f}", "measurand": "Energy.Active.Import.Register",
                 "unit": "Wh"},
                {"value": f"{power_w:.0f}", "measurand": "Power.Active.Import", "unit": "W"}]}]))

    async def stop(self, transaction_id: int, meter_stop: int, reason: str = "Remote") -> None:
        await self.call(call.StopTransaction(meter_stop=meter_stop, timestamp=iso(),
                                             transaction_id=transaction_id, reason=reason))

    async def close(self) -> None:
        if self._ws is not None:
            await self.drop()
