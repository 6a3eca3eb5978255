"""The 2.0.1 backend of passthrough tests: the ocpp library's v201 `ChargePoint` on the CSMS
side inside `websockets.serve` (subprotocol ocpp2.0.1), recording every raw frame as the 1.6
`backend.Backend` does. It accepts one RFID idToken."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call
from ocpp.v201 import call_result as result
from ocpp.v201.enums import Action

from strom.timeutil import iso
from tests.passthrough.backend import OWNER_TAG, Backend, Recording


class BackendCharger201(ChargePoint):
    """The backend's view of one 2.0.1 charger: the library's handlers."""

    def __init__(self, cp_id: str, ws: Any, backend: Backend201) -> None:
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
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> result.Authorize:
        return result.Authorize(id_token_info={"status": self._backend.status(
            id_token["id_token"])})

    @on(Action.transaction_event)
    def on_transaction_event(self, id_token: dict[str, Any] | None = None,
                             **_: Any) -> result.TransactionEvent:
        if id_token is None:
            return result.TransactionEvent()
        return result.TransactionEvent(id_token_info={"status": self._backend.status(
            id_token["id_token"])})

    @on(Action.meter_values)
    def on_meter(self, **_: Any) -> result.MeterValues:
        return result.MeterValues()


class Backend201(Backend):
    """The CSMS, speaking 2.0.1."""

    subprotocol = "ocpp2.0.1"

    def _charger(self, cp_id: str, ws: Recording) -> Any:
        return BackendCharger201(cp_id, ws, self)

    async def remote_start(self, connector: int, id_tag: str = OWNER_TAG) -> Any:
        assert self.charger is not None
        return await self.charger.call(call.RequestStartTransaction(
            id_token={"idToken": id_tag, "type": "ISO14443"}, remote_start_id=77,
            evse_id=connector))
