"""One websocket connection to the central system: the charge point's OCPP 1.6J handlers.

Each `@on` handler only decides the answer; whatever the charge point does as a result runs in
the matching `@after` hook, once the answer is on the wire, so the central system never sees a
StatusNotification or StopTransaction about a request before the answer to that request.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, MessageTrigger, Reason

if TYPE_CHECKING:
    from strom.simulator.charge_point import SimulatedChargePoint

VENDOR_ID = "strom-sim"
TRIGGERABLE = {MessageTrigger.boot_notification, MessageTrigger.heartbeat,
               MessageTrigger.status_notification, MessageTrigger.meter_values}


class QuietLogger(logging.LoggerAdapter):
    """The ocpp library logs every frame at INFO and a traceback for each CALLERROR it sends
    (e.g. NotImplemented); for a simulator those are debug detail and one-line warnings."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        self.warning(f"{msg}: %s", *args, sys.exc_info()[1], **kwargs)


class OcppLink(ChargePoint):
    """The ocpp library's charge point, bound to one connection of a `SimulatedChargePoint`."""

    def __init__(self, sim: SimulatedChargePoint, connection: Any, response_timeout: float) -> None:
        super().__init__(sim.cp_id, connection, response_timeout=response_timeout,
                         logger=QuietLogger(logging.getLogger("strom.simulator.ocpp"), {}))
        self._sim = sim
        self._reserved: dict[str, Any] = {}

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, call_unique_id: str, connector_id: int | None = None,
                        **_: Any) -> call_result.RemoteStartTransaction:
        conn = self._sim.charging.reserve(connector_id)
        if conn is None:
            return call_result.RemoteStartTransaction(status="Rejected")
        self._reserved[call_unique_id] = conn
        return call_result.RemoteStartTransaction(status="Accepted")

    @after(Action.remote_start_transaction)
    def after_remote_start(self, id_tag: str, call_unique_id: str, **_: Any) -> None:
        conn = self._reserved.pop(call_unique_id, None)
        if conn is not None:
            self._sim.spawn(self._sim.charging.begin(conn, id_tag))

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, **_: Any) -> call_result.RemoteStopTransaction:
        found = self._sim.charging.transaction(transaction_id) is not None
        return call_result.RemoteStopTransaction(status="Accepted" if found else "Rejected")

    @after(Action.remote_stop_transaction)
    def after_remote_stop(self, transaction_id: int, **_: Any) -> None:
        conn = self._sim.charging.transaction(transaction_id)
        if conn is not None:
            self._sim.charging.stop(conn.id, Reason.remote)

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> call_result.Reset:
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, **_: Any) -> None:
        self._sim.spawn(self._sim.reset(hard=type == "Hard"))

    @on(Action.unlock_connector)
    def on_unlock(self, connector_id: int, **_: Any) -> call_result.UnlockConnector:
        known = connector_id in self._sim.charging.connectors
        return call_result.UnlockConnector(status="Unlocked" if known else "NotSupported")

    @after(Action.unlock_connector)
    def after_unlock(self, connector_id: int, **_: Any) -> None:
        if connector_id in self._sim.charging.connectors:
            self._sim.charging.unlock(connector_id)

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str,
                               **_: Any) -> call_result.ChangeAvailability:
        charging = self._sim.charging
        if connector_id != 0 and connector_id not in charging.connectors:
            return call_result.ChangeAvailability(status="Rejected")
        return call_result.ChangeAvailability(
            status="Scheduled" if charging.busy(connector_id) else "Accepted")

    @after(Action.change_availability)
    def after_change_availability(self, connector_id: int, type: str, **_: Any) -> None:
        if connector_id == 0 or connector_id in self._sim.charging.connectors:
            self._sim.charging.set_availability(connector_id, operative=type == "Operative")

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None,
                             **_: Any) -> call_result.GetConfiguration:
        known, unknown = self._sim.config.get(key)
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str,
                                **_: Any) -> call_result.ChangeConfiguration:
        return call_result.ChangeConfiguration(status=self._sim.config.change(key, value))

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None,
                           **_: Any) -> call_result.TriggerMessage:
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        if connector_id not in (None, 0, *self._sim.charging.connectors):
            return call_result.TriggerMessage(status="Rejected")
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, connector_id: int | None = None,
                              **_: Any) -> None:
        if requested_message in TRIGGERABLE and connector_id in (
                None, 0, *self._sim.charging.connectors):
            self._sim.trigger(requested_message, connector_id)

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        return call_result.ClearCache(status="Accepted")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, data: str | None = None,
                         **_: Any) -> call_result.DataTransfer:
        if vendor_id != VENDOR_ID:
            return call_result.DataTransfer(status="UnknownVendorId")
        # Echo, so a central system can check the round trip.
        return call_result.DataTransfer(status="Accepted", data=data)
