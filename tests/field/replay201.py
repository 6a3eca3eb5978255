"""A recorded OCPP 2.0.1 charger: `RecordedCharger` speaking 2.0.1.

The TransactionEvents go out as posted but for the idToken (the paid session's, so strom knows
the driver) and the timestamps (shifted as one block); the charger names its transaction
itself, so its transactionId stays. strom's calls get what a cooperative 2.0.1 charger answers:
RequestStart/StopTransaction accepted, the device model unknown (a recording cannot change
what it samples), everything else declined.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.field.replay import CALLERROR, CALLRESULT, RecordedCharger


class RecordedCharger201(RecordedCharger):
    subprotocol = "ocpp2.0.1"

    async def replay(self, frame: list[Any]) -> list[Any]:
        frame = copy.deepcopy(frame)
        token = frame[3].get("idToken")
        if frame[2] == "TransactionEvent" and token is not None:
            assert self.id_tag is not None, "strom never asked this charger to start"
            token["idToken"] = self.id_tag
        return await super().replay(frame)

    def _answer(self, frame: list[Any]) -> list[Any]:
        unique_id, action, payload = frame[1], frame[2], frame[3]
        if action == "RequestStartTransaction":
            self.id_tag = payload["idToken"]["idToken"]
            self.remote_start.set()
            return [CALLRESULT, unique_id, {"status": "Accepted"}]
        if action in ("RequestStopTransaction", "ChangeAvailability"):
            return [CALLRESULT, unique_id, {"status": "Accepted"}]
        if action in ("GetVariables", "SetVariables"):
            key = "getVariableData" if action == "GetVariables" else "setVariableData"
            results = [{"attributeStatus": "UnknownVariable", "component": item["component"],
                        "variable": item["variable"]} for item in payload[key]]
            return [CALLRESULT, unique_id, {
                "getVariableResult" if action == "GetVariables" else "setVariableResult":
                results}]
        if action == "TriggerMessage":
            return [CALLRESULT, unique_id, {"status": "Rejected"}]
        return [CALLERROR, unique_id, "NotSupported", f"{action} is not supported", {}]
