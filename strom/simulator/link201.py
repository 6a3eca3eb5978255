"""The simulator speaking OCPP 2.0.1: the same charge point behind a translating link.

`Charging` and the outbox make 1.6-shaped calls (StartTransaction, MeterValues,
StopTransaction, …); `OcppLink201.call` sends each as its 2.0.1 message (TransactionEvent
Started/Updated/Ended with the charger's own transactionId and seqNo, StatusNotification per
EVSE, …) and hands the answer back 1.6-shaped, so the charge point's state machine, offline
queue and metering stay one. The 2.0.1 requests of the central system (RequestStart/Stop,
GetVariables/SetVariables for the metering keys, …) drive the same charge point as 1.6's.
What must outlive one connection (the charger's transaction names, seqNos, remote start ids:
a queued Ended goes out on the next connection) is in `Translation`, one per charge point.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ocpp.routing import after, on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Reason
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from strom.ocpp.protocols import DEVICE_MODEL
from strom.simulator.link import TRIGGERABLE, VENDOR_ID, QuietLogger
from strom.timeutil import iso

if TYPE_CHECKING:
    from strom.simulator.charge_point import SimulatedChargePoint

# 1.6 connector status → 2.0.1 connector status
_STATUS = {"Available": "Available", "Preparing": "Occupied", "Charging": "Occupied",
           "SuspendedEV": "Occupied", "SuspendedEVSE": "Occupied", "Finishing": "Occupied",
           "Reserved": "Reserved", "Unavailable": "Unavailable", "Faulted": "Faulted"}
# 1.6 stop reason → 2.0.1 stoppedReason and triggerReason
_STOPPED = {"HardReset": "ImmediateReset", "SoftReset": "Reboot", "UnlockCommand": "Other"}
_STOP_TRIGGER = {"Remote": "RemoteStop", "EVDisconnected": "EVCommunicationLost",
                 "Local": "StopAuthorized", "DeAuthorized": "Deauthorized"}
_VARIABLES = {place: key for key, place in DEVICE_MODEL.items()}
_SET = {"Accepted": "Accepted", "RebootRequired": "RebootRequired", "Rejected": "Rejected"}


@dataclass
class Translation:
    """The 2.0.1 names of the charge point's transactions, kept across connections."""

    names: dict[int, str] = field(default_factory=dict)  # local transaction id → transactionId
    seq_nos: dict[int, int] = field(default_factory=dict)
    remote_starts: dict[int, int] = field(default_factory=dict)  # connector → remoteStartId
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def local(self, name: str) -> int | None:
        return next((local for local, known in self.names.items() if known == name), None)

    def event(self, local: int, event_type: str, trigger: str, at: str,
              meter_value: list[dict[str, Any]] | None, **extra: Any) -> call.TransactionEvent:
        seq_no = self.seq_nos.get(local, -1) + 1
        self.seq_nos[local] = seq_no
        return call.TransactionEvent(
            event_type=event_type, timestamp=at, trigger_reason=trigger, seq_no=seq_no,
            meter_value=meter_value or None, **extra)


def _meter_values(values: Any) -> list[dict[str, Any]]:
    """1.6 MeterValue objects (or dicts) → 2.0.1 meterValue: numbers and unitOfMeasure."""
    converted = []
    for entry in values or []:
        data = (dataclasses.asdict(entry)
                if dataclasses.is_dataclass(entry) and not isinstance(entry, type) else dict(entry))
        sampled = []
        for sample in data.get("sampled_value") or []:
            item: dict[str, Any] = {"value": float(sample["value"])}
            for key in ("context", "measurand", "phase", "location"):
                if sample.get(key):
                    item[key] = str(sample[key])
            if sample.get("unit"):
                item["unitOfMeasure"] = {"unit": str(sample["unit"])}
            sampled.append(item)
        if sampled:
            converted.append({"timestamp": data["timestamp"], "sampledValue": sampled})
    return converted


class OcppLink201(ChargePoint):
    """The ocpp library's 2.0.1 charge point, bound to one connection of a simulator."""

    def __init__(self, sim: SimulatedChargePoint, connection: Any, response_timeout: float,
                 translation: Translation) -> None:
        super().__init__(sim.cp_id, connection, response_timeout=response_timeout,
                         logger=QuietLogger(logging.getLogger("strom.simulator.ocpp"), {}))
        self._sim = sim
        self._tx = translation
        self._reserved: dict[str, Any] = {}

    # --- the charge point's calls, out as 2.0.1 -------------------------------------------

    async def call(self, payload: Any, suppress: bool = True, unique_id: Any = None,
                   skip_schema_validation: bool = False) -> Any:
        """Send a 1.6-shaped call as its 2.0.1 message; the answer comes back 1.6-shaped."""
        name = type(payload).__name__
        translate = getattr(self, f"_{name}", None)
        if translate is None:
            raise NotImplementedError(f"{name} has no OCPP 2.0.1 form here")
        outgoing, back = translate(payload)
        if outgoing is None:
            return back(None)
        answer = await super().call(outgoing, suppress=suppress)
        return None if answer is None else back(answer)

    def _BootNotification(self, p: call16.BootNotification) -> tuple[Any, Any]:  # noqa: N802
        station = {"vendorName": p.charge_point_vendor, "model": p.charge_point_model,
                   "firmwareVersion": p.firmware_version,
                   "serialNumber": p.charge_point_serial_number}
        return (call.BootNotification(
            charging_station={k: v for k, v in station.items() if v}, reason="PowerUp"),
            lambda r: result16.BootNotification(current_time=r.current_time,
                                                interval=r.interval, status=r.status))

    def _Heartbeat(self, p: call16.Heartbeat) -> tuple[Any, Any]:  # noqa: N802
        return call.Heartbeat(), lambda r: result16.Heartbeat(current_time=r.current_time)

    def _StatusNotification(self, p: call16.StatusNotification) -> tuple[Any, Any]:  # noqa: N802
        if p.connector_id == 0:  # 2.0.1 has connectors on EVSEs only
            return None, lambda r: result16.StatusNotification()
        return (call.StatusNotification(
            timestamp=p.timestamp or iso(), connector_status=_STATUS.get(p.status, "Unavailable"),
            evse_id=p.connector_id, connector_id=1), lambda r: result16.StatusNotification())

    def _Authorize(self, p: call16.Authorize) -> tuple[Any, Any]:  # noqa: N802
        return (call.Authorize(id_token={"idToken": p.id_tag, "type": "Central"}),
                lambda r: result16.Authorize(id_tag_info={"status": r.id_token_info["status"]}))

    def _StartTransaction(self, p: call16.StartTransaction) -> tuple[Any, Any]:  # noqa: N802
        local = next(self._tx._ids)
        self._tx.names[local] = str(uuid.uuid4())
        remote = self._tx.remote_starts.pop(p.connector_id, None)
        info: dict[str, Any] = {"transactionId": self._tx.names[local], "chargingState": "Charging"}
        if remote is not None:
            info["remoteStartId"] = remote
        begin = [{"timestamp": p.timestamp, "sampledValue": [{
            "value": p.meter_start, "context": "Transaction.Begin", "location": "Outlet",
            "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]}]
        event = self._tx.event(local, "Started", "RemoteStart" if remote else "Authorized",
                               p.timestamp, begin, transaction_info=info,
                               evse={"id": p.connector_id, "connectorId": 1},
                               id_token={"idToken": p.id_tag, "type": "Central"})
        return event, lambda r: result16.StartTransaction(transaction_id=local, id_tag_info={
            "status": (r.id_token_info or {}).get("status", "Accepted")})

    def _MeterValues(self, p: call16.MeterValues) -> tuple[Any, Any]:  # noqa: N802
        values = _meter_values(p.meter_value)
        name = self._tx.names.get(p.transaction_id) if p.transaction_id is not None else None
        if name is None:
            return (call.MeterValues(evse_id=p.connector_id, meter_value=values),
                    lambda r: result16.MeterValues())
        event = self._tx.event(p.transaction_id, "Updated", "MeterValuePeriodic",
                               values[0]["timestamp"] if values else iso(), values,
                               transaction_info={"transactionId": name,
                                                 "chargingState": "Charging"})
        return event, lambda r: result16.MeterValues()

    def _StopTransaction(self, p: call16.StopTransaction) -> tuple[Any, Any]:  # noqa: N802
        name = self._tx.names.get(p.transaction_id)
        if name is None:
            return None, lambda r: result16.StopTransaction()
        reason = str(p.reason or "Local")
        values = _meter_values(p.transaction_data) or [{"timestamp": p.timestamp, "sampledValue": [
            {"value": p.meter_stop, "context": "Transaction.End", "location": "Outlet",
             "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]}]
        event = self._tx.event(p.transaction_id, "Ended", _STOP_TRIGGER.get(reason,
                                                                             "AbnormalCondition"),
                               p.timestamp, values, transaction_info={
                                   "transactionId": name, "stoppedReason": _STOPPED.get(reason,
                                                                                        reason)},
                               id_token={"idToken": p.id_tag, "type": "Central"}
                               if p.id_tag else None)
        return event, lambda r: result16.StopTransaction(id_tag_info={"status": "Accepted"})

    # --- the central system's requests -----------------------------------------------------

    @on(Action.request_start_transaction)
    def on_request_start(self, id_token: dict[str, Any], remote_start_id: int,
                         call_unique_id: str, evse_id: int | None = None,
                         **_: Any) -> Any:
        conn = self._sim.charging.reserve(evse_id)
        if conn is None:
            return call_result.RequestStartTransaction(status="Rejected")
        self._reserved[call_unique_id] = conn
        self._tx.remote_starts[conn.id] = remote_start_id
        return call_result.RequestStartTransaction(status="Accepted")

    @after(Action.request_start_transaction)
    def after_request_start(self, id_token: dict[str, Any], call_unique_id: str,
                            **_: Any) -> None:
        conn = self._reserved.pop(call_unique_id, None)
        if conn is not None:
            self._sim.spawn(self._sim.charging.begin(conn, id_token["id_token"]))

    @on(Action.request_stop_transaction)
    def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        local = self._tx.local(transaction_id)
        found = local is not None and self._sim.charging.transaction(local) is not None
        return call_result.RequestStopTransaction(status="Accepted" if found else "Rejected")

    @after(Action.request_stop_transaction)
    def after_request_stop(self, transaction_id: str, **_: Any) -> None:
        local = self._tx.local(transaction_id)
        conn = self._sim.charging.transaction(local) if local is not None else None
        if conn is not None:
            self._sim.charging.stop(conn.id, Reason.remote)

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> Any:
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, **_: Any) -> None:
        self._sim.spawn(self._sim.reset(hard=type == "Immediate"))

    @on(Action.unlock_connector)
    def on_unlock(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        known = evse_id in self._sim.charging.connectors and connector_id == 1
        if known:
            self._sim.charging.unlock(evse_id)
        return call_result.UnlockConnector(status="Unlocked" if known else "UnknownConnector")

    @on(Action.change_availability)
    def on_change_availability(self, operational_status: str,
                               evse: dict[str, Any] | None = None, **_: Any) -> Any:
        charging, connector_id = self._sim.charging, (evse or {}).get("id", 0)
        if connector_id != 0 and connector_id not in charging.connectors:
            return call_result.ChangeAvailability(status="Rejected")
        return call_result.ChangeAvailability(
            status="Scheduled" if charging.busy(connector_id) else "Accepted")

    @after(Action.change_availability)
    def after_change_availability(self, operational_status: str,
                                  evse: dict[str, Any] | None = None, **_: Any) -> None:
        connector_id = (evse or {}).get("id", 0)
        if connector_id == 0 or connector_id in self._sim.charging.connectors:
            self._sim.charging.set_availability(connector_id,
                                                operative=operational_status == "Operative")

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in get_variable_data:
            key = _VARIABLES.get((item["component"]["name"], item["variable"]["name"]))
            known = self._sim.config.get([key])[0] if key else []
            results.append({"attributeStatus": "Accepted" if known else "UnknownVariable",
                            "attributeValue": known[0].get("value") if known else None,
                            "component": item["component"], "variable": item["variable"]})
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in set_variable_data:
            key = _VARIABLES.get((item["component"]["name"], item["variable"]["name"]))
            status = (_SET.get(self._sim.config.change(key, item["attribute_value"]),
                               "Rejected") if key else "UnknownVariable")
            results.append({"attributeStatus": status, "component": item["component"],
                            "variable": item["variable"]})
        return call_result.SetVariables(set_variable_result=results)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None,
                           **_: Any) -> Any:
        message = "MeterValues" if requested_message == "TransactionEvent" else requested_message
        if message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None,
                              **_: Any) -> None:
        message = "MeterValues" if requested_message == "TransactionEvent" else requested_message
        connector_id = (evse or {}).get("id")
        if message in TRIGGERABLE and connector_id in (None, 0, *self._sim.charging.connectors):
            self._sim.trigger(message, connector_id)

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> Any:
        return call_result.ClearCache(status="Accepted")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, data: Any = None, **_: Any) -> Any:
        if vendor_id != VENDOR_ID:
            return call_result.DataTransfer(status="UnknownVendorId")
        return call_result.DataTransfer(status="Accepted", data=data)
