"""A charger for tests: the ocpp library's own v201 ChargePoint as an OCPP 2.0.1 client.

It boots, reports its EVSEs Available, starts a transaction when strom sends
RequestStartTransaction (TransactionEvent Started with the idToken, the remoteStartId and a
Transaction.Begin register, as a real charger does; the transactionId is its own string),
sends Updated events with meter values, and ends on RequestStopTransaction with the final
register. Everything strom asks is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import connect

from strom.timeutil import iso


@dataclass
class Running:
    """One transaction the charger runs on an EVSE."""

    name: str
    id_tag: str
    seq_no: int = 0
    energy_wh: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)


def reading(energy_wh: float, context: str = "Sample.Periodic",
            power_w: float | None = None) -> list[dict[str, Any]]:
    """One meterValue: the register in kWh with a multiplier of 0 (and power in W)."""
    sampled: list[dict[str, Any]] = [{
        "value": round(energy_wh / 1000, 4), "context": context,
        "measurand": "Energy.Active.Import.Register", "location": "Outlet",
        "unitOfMeasure": {"unit": "kWh", "multiplier": 0}}]
    if power_w is not None:
        sampled.append({"value": power_w, "context": context,
                        "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}})
    return [{"timestamp": iso(), "sampledValue": sampled}]


class Charger201(ChargePoint):
    """Answers like a real 2.0.1 charger; records what it was asked."""

    def __init__(self, cp_id: str, ws: Any, evses: int, register_wh: float = 1_000_000.0) -> None:
        super().__init__(cp_id, ws, response_timeout=10)
        self.evses = evses
        self.register_wh = register_wh  # the meter's lifetime register (not 0: a used charger)
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.running: dict[int, Running] = {}  # EVSE → transaction
        self.ended: list[Running] = []
        # The device model as many chargers ship: the register only, never sampled while
        # charging, SoC it cannot measure — as the BMW/Delta wallbox's published report shows
        # (TxUpdatedInterval 0; https://github.com/JoaoPedroBelo/bmw-wallbox-ha/blob/main/
        # custom_components/bmw_wallbox/docs/WALLBOX_CAPABILITIES.md).
        self.variables = {("SampledDataCtrlr", "TxUpdatedMeasurands"):
                          "Energy.Active.Import.Register",
                          ("SampledDataCtrlr", "TxUpdatedInterval"): "0",
                          ("SampledDataCtrlr", "TxEndedMeasurands"): "",
                          ("SampledDataCtrlr", "TxStartedMeasurands"): "",
                          ("SmartChargingCtrlr", "RateUnit"): "A, W"}
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def boot(self) -> call_result.BootNotification:
        result = await self.call(call.BootNotification(
            charging_station={"model": "Test 201", "vendorName": "Acme",
                              "firmwareVersion": "2.0.1-test"}, reason="PowerUp"))
        if result.status == "Accepted":
            for evse in range(1, self.evses + 1):
                await self.status(evse, "Available")
        return result

    async def status(self, evse: int, status: str) -> None:
        await self.call(call.StatusNotification(timestamp=iso(), connector_status=status,
                                                evse_id=evse, connector_id=1))

    async def event(self, evse: int, event_type: str, trigger: str,
                    meter_value: list[dict[str, Any]] | None = None, offline: bool = False,
                    id_tag: str | None = None, **info: Any) -> call_result.TransactionEvent:
        """One TransactionEvent of the EVSE's transaction; the idToken goes with Started (when
        the transaction has one) or with `id_tag`."""
        tx = self.running[evse]
        payload: dict[str, Any] = {
            "event_type": event_type, "timestamp": iso(), "trigger_reason": trigger,
            "seq_no": tx.seq_no, "transaction_info": {"transactionId": tx.name, **info},
            "evse": {"id": evse, "connectorId": 1}, "meter_value": meter_value,
            "offline": offline or None}
        if id_tag or (event_type == "Started" and tx.id_tag):
            payload["id_token"] = {"idToken": id_tag or tx.id_tag, "type": "Central"}
        tx.seq_no += 1
        tx.events.append(payload)
        return await self.call(call.TransactionEvent(**payload))

    async def meter(self, evse: int, energy_wh: float, power_w: float = 7_000.0) -> None:
        """Charge to `energy_wh` in this transaction and report it in an Updated event."""
        tx = self.running[evse]
        tx.energy_wh = energy_wh
        await self.event(evse, "Updated", "MeterValuePeriodic",
                         reading(self.register_wh + energy_wh, power_w=power_w),
                         chargingState="Charging")

    async def _start(self, evse: int, id_tag: str, remote_start_id: int) -> None:
        await self.status(evse, "Occupied")
        self.running[evse] = Running(str(uuid.uuid4()), id_tag)
        await self.event(evse, "Started", "RemoteStart",
                         reading(self.register_wh, "Transaction.Begin"),
                         chargingState="EVConnected", remoteStartId=remote_start_id)

    async def _stop(self, evse: int, reason: str = "Remote") -> None:
        tx = self.running[evse]
        await self.event(evse, "Ended", "RemoteStop",
                         reading(self.register_wh + tx.energy_wh, "Transaction.End"),
                         stoppedReason=reason, chargingState="EVConnected")
        self.register_wh += tx.energy_wh
        self.ended.append(self.running.pop(evse))
        await self.status(evse, "Available")

    @on(Action.request_start_transaction)
    async def on_request_start(self, id_token: dict[str, Any], remote_start_id: int,
                               evse_id: int | None = None,
                               **_: Any) -> call_result.RequestStartTransaction:
        self.asked.append(("RequestStartTransaction", {"id_token": id_token,
                                                       "evse_id": evse_id}))
        # Calls from inside a handler would wait on the loop that reads their answer.
        self._spawn(self._start(evse_id or 1, id_token["id_token"], remote_start_id))
        return call_result.RequestStartTransaction(status="Accepted")

    @on(Action.request_stop_transaction)
    async def on_request_stop(self, transaction_id: str,
                              **_: Any) -> call_result.RequestStopTransaction:
        self.asked.append(("RequestStopTransaction", {"transaction_id": transaction_id}))
        evse = next((e for e, tx in self.running.items() if tx.name == transaction_id), None)
        if evse is None:
            return call_result.RequestStopTransaction(status="Rejected")
        self._spawn(self._stop(evse))
        return call_result.RequestStopTransaction(status="Accepted")

    @on(Action.trigger_message)
    async def on_trigger(self, requested_message: str, evse: dict[str, Any] | None = None,
                         **_: Any) -> call_result.TriggerMessage:
        self.asked.append(("TriggerMessage", {"requested_message": requested_message,
                                              "evse": evse}))
        return call_result.TriggerMessage(status="Accepted")


    @on(Action.get_variables)
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]],
                               **_: Any) -> call_result.GetVariables:
        results = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            known = key in self.variables
            results.append({"attributeStatus": "Accepted" if known else "UnknownVariable",
                            "attributeValue": self.variables.get(key),
                            "component": item["component"], "variable": item["variable"]})
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]],
                               **_: Any) -> call_result.SetVariables:
        results = []
        for item in set_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            value = item["attribute_value"]
            status = "Rejected" if "SoC" in value else "Accepted"
            if status == "Accepted":
                self.variables[key] = value
            results.append({"attributeStatus": status, "component": item["component"],
                            "variable": item["variable"]})
        return call_result.SetVariables(set_variable_result=results)

    @on(Action.reset)
    async def on_reset(self, type: str, **_: Any) -> call_result.Reset:
        self.asked.append(("Reset", {"type": type}))
        return call_result.Reset(status="Scheduled" if self.running else "Accepted")

    @on(Action.unlock_connector)
    async def on_unlock(self, evse_id: int, connector_id: int,
                        **_: Any) -> call_result.UnlockConnector:
        self.asked.append(("UnlockConnector", {"evse_id": evse_id}))
        return call_result.UnlockConnector(
            status="Unlocked" if evse_id <= self.evses else "UnknownConnector")

    @on(Action.change_availability)
    async def on_availability(self, operational_status: str, evse: dict[str, Any] | None = None,
                              **_: Any) -> call_result.ChangeAvailability:
        self.asked.append(("ChangeAvailability", {"status": operational_status, "evse": evse}))
        return call_result.ChangeAvailability(status="Accepted")

    @on(Action.set_charging_profile)
    async def on_set_profile(self, evse_id: int, charging_profile: dict[str, Any],
                             **_: Any) -> call_result.SetChargingProfile:
        self.asked.append(("SetChargingProfile", {"evse_id": evse_id,
                                                  "profile": charging_profile}))
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    async def on_clear_profile(self, charging_profile_id: int | None = None,
                               **_: Any) -> call_result.ClearChargingProfile:
        self.asked.append(("ClearChargingProfile", {"id": charging_profile_id}))
        return call_result.ClearChargingProfile(status="Unknown")

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **_: Any) -> call_result.DataTransfer:
        self.asked.append(("DataTransfer", {"vendor_id": vendor_id}))
        return call_result.DataTransfer(status="Accepted", data="pong")


STEP_WH = 4.0


class ChargingCharger201(Charger201):
    """Charges STEP_WH per tick once started and reports each step in an Updated event."""

    async def _start(self, evse: int, id_tag: str, remote_start_id: int) -> None:
        await super()._start(evse, id_tag, remote_start_id)
        self._spawn(self._charge(evse, self.running[evse].name))

    async def _charge(self, evse: int, name: str) -> None:
        while evse in self.running and self.running[evse].name == name:
            await self.meter(evse, self.running[evse].energy_wh + STEP_WH)
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_charger201(ocpp_url: str, cp_id: str, evses: int = 2,
                             subprotocols: tuple[str, ...] = ("ocpp2.0.1",),
                             charger_class: type[Charger201] = Charger201,
                             ) -> AsyncIterator[Charger201]:
    """A booted 2.0.1 charger connected to `ocpp_url` + cp_id, all EVSEs Available."""
    async with connect(ocpp_url + cp_id, subprotocols=list(subprotocols)) as ws:  # type: ignore[arg-type]
        charger = charger_class(cp_id, ws, evses)
        task = asyncio.create_task(charger.start())
        try:
            result = await charger.boot()
            assert result.status == "Accepted", result
            yield charger
        finally:
            task.cancel()
            for pending in list(charger._tasks):
                pending.cancel()
