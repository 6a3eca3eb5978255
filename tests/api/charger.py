"""A charger for tests: the ocpp library's own ChargePoint as an OCPP 1.6J client.

It boots, reports its connectors Available, starts a transaction when strom sends
RemoteStartTransaction (as a real charger does: StartTransaction with the given idTag, then
meter values), stops on RemoteStopTransaction, and answers the operator's commands. `mode`
makes it refuse commands with a CALLERROR, or answer too late.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

from ocpp.exceptions import NotImplementedError as CallNotImplemented
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect

from strom.timeutil import iso

Mode = Literal["normal", "refuse", "slow"]


class TestCharger(ChargePoint):
    """Answers like a real charger; records what it was asked."""

    __test__ = False  # not a pytest class

    def __init__(self, cp_id: str, ws: Any, connectors: int) -> None:
        super().__init__(cp_id, ws, response_timeout=10)
        self.connectors = connectors
        self.mode: Mode = "normal"
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.transactions: dict[int, int] = {}  # connector → transaction id
        self.energy_wh: dict[int, float] = {}  # connector → meter register
        self.remote_stops: list[int] = []  # transaction ids strom asked to stop
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, action: str, args: dict[str, Any]) -> None:
        self.asked.append((action, args))
        if self.mode == "refuse":
            raise CallNotImplemented(description=f"{action} is not supported here")
        if self.mode == "slow":
            await asyncio.sleep(5)

    async def boot(self) -> None:
        await self.call(call.BootNotification(charge_point_vendor="Acme",
                                              charge_point_model="Test 22"))
        for connector in range(1, self.connectors + 1):
            await self.status(connector, "Available")

    async def status(self, connector: int, status: str) -> None:
        await self.call(call.StatusNotification(connector_id=connector, error_code="NoError",
                                                status=status))

    async def meter(self, connector: int, energy_wh: float, power_w: float) -> None:
        self.energy_wh[connector] = energy_wh
        await self.call(call.MeterValues(
            connector_id=connector, transaction_id=self.transactions[connector],
            meter_value=[{"timestamp": iso(), "sampled_value": [
                {"value": str(energy_wh), "measurand": "Energy.Active.Import.Register",
                 "unit": "Wh"},
                {"value": str(power_w), "measurand": "Power.Active.Import", "unit": "W"}]}]))

    async def _start(self, connector: int, id_tag: str) -> None:
        await self.status(connector, "Preparing")
        result = await self.call(call.StartTransaction(
            connector_id=connector, id_tag=id_tag, meter_start=0, timestamp=iso()))
        self.transactions[connector] = result.transaction_id
        await self.status(connector, "Charging")

    async def _stop(self, transaction_id: int) -> None:
        connector = next(c for c, t in self.transactions.items() if t == transaction_id)
        meter_stop = int(self.energy_wh.get(connector, 0))
        await self.call(call.StopTransaction(meter_stop=meter_stop, timestamp=iso(),
                                             transaction_id=transaction_id, reason="Remote"))
        del self.transactions[connector]
        await self.status(connector, "Available")

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, connector_id: int | None = None,
                              **_: Any) -> call_result.RemoteStartTransaction:
        connector = connector_id or 1
        # Calls from inside a handler would wait on the loop that reads their answer.
        self._spawn(self._start(connector, id_tag))
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        self.remote_stops.append(transaction_id)
        self._spawn(self._stop(transaction_id))
        return call_result.RemoteStopTransaction(status="Accepted")

    @on(Action.reset)
    async def on_reset(self, type: str) -> call_result.Reset:
        await self._answer("Reset", {"type": type})
        return call_result.Reset(status="Accepted")

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id: int) -> call_result.UnlockConnector:
        await self._answer("UnlockConnector", {"connector_id": connector_id})
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    async def on_availability(self, connector_id: int, type: str) -> call_result.ChangeAvailability:
        await self._answer("ChangeAvailability", {"connector_id": connector_id, "type": type})
        return call_result.ChangeAvailability(status="Scheduled" if self.transactions
                                              else "Accepted")

    @on(Action.set_charging_profile)
    async def on_set_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]
                             ) -> call_result.SetChargingProfile:
        await self._answer("SetChargingProfile", {"connector_id": connector_id,
                                                  "cs_charging_profiles": cs_charging_profiles})
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    async def on_clear_profile(self, **kwargs: Any) -> call_result.ClearChargingProfile:
        await self._answer("ClearChargingProfile", kwargs)
        return call_result.ClearChargingProfile(status="Unknown")

    @on(Action.trigger_message)
    async def on_trigger(self, requested_message: str,
                         connector_id: int | None = None) -> call_result.TriggerMessage:
        await self._answer("TriggerMessage", {"requested_message": requested_message,
                                              "connector_id": connector_id})
        return call_result.TriggerMessage(status="Accepted")


@contextlib.asynccontextmanager
async def running_charger(ocpp_url: str, cp_id: str, connectors: int = 2,
                          charger_class: type[TestCharger] = TestCharger
                          ) -> AsyncIterator[TestCharger]:
    """A booted charger connected to `ocpp_url` + cp_id, all connectors Available."""
    async with connect(ocpp_url + cp_id, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        charger = charger_class(cp_id, ws, connectors)
        task = asyncio.create_task(charger.start())
        try:
            await charger.boot()
            yield charger
        finally:
            task.cancel()
            for pending in list(charger._tasks):
                pending.cancel()
