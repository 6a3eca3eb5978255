"""The compiled schema checks (strom/ocpp/validation.py) side by side with the ocpp library's.

Whatever the compiled check accepts, the library's jsonschema validation accepts; whatever it
refuses gets the library's own OCPP error; the payload is never changed (no defaults filled
in). Payloads are drawn around real frames, with keys dropped, added and retyped.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult, validate_payload

from strom.ocpp.validation import compiled, validate

# Real frames' payloads (OCPP 1.6J), the shape chargers send and strom answers.
FRAMES: list[tuple[str, bool, dict[str, Any]]] = [
    ("MeterValues", True, {"connectorId": 1, "transactionId": 7, "meterValue": [
        {"timestamp": "2024-05-01T10:00:00Z", "sampledValue": [
            {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh",
             "context": "Sample.Periodic", "location": "Outlet"},
            {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"}]}]}),
    ("StatusNotification", True, {"connectorId": 1, "errorCode": "NoError",
                                  "status": "Charging", "timestamp": "2024-05-01T10:00:00Z"}),
    ("BootNotification", True, {"chargePointVendor": "Alfen BV",
                                "chargePointModel": "NG920-60503", "firmwareVersion": "6.1.0"}),
    ("StartTransaction", True, {"connectorId": 1, "idTag": "abc", "meterStart": 0,
                                "timestamp": "2024-05-01T10:00:00Z"}),
    ("Heartbeat", True, {}),
    ("BootNotification", False, {"currentTime": "2024-05-01T10:00:00Z", "interval": 300,
                                 "status": "Accepted"}),
    ("StartTransaction", False, {"transactionId": 3, "idTagInfo": {"status": "Accepted"}}),
]

values = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**40), st.floats(allow_nan=False),
                   st.text(max_size=30), st.sampled_from(["Accepted", "Charging", "Wh", "NoError"]),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=5),
                                                                        st.integers(), max_size=2))


def _message(action: str, is_call: bool, payload: dict[str, Any]) -> Call | CallResult:
    if is_call:
        return Call("1", action, payload)
    result = CallResult("1", payload)
    result.action = action
    return result


async def _library(message: Call | CallResult) -> type[OCPPError] | None:
    try:
        await validate_payload(message, "1.6")
    except OCPPError as error:
        return type(error)
    return None


async def _ours(message: Call | CallResult) -> type[OCPPError] | None:
    try:
        await validate(message, "1.6")
    except OCPPError as error:
        return type(error)
    return None


def _first_sample(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The first sampled value of a MeterValues payload, if an earlier edit left one (a "set"
    may have replaced meterValue or its items with anything)."""
    readings = payload.get("meterValue")
    if not isinstance(readings, list) or not readings or not isinstance(readings[0], dict):
        return None
    samples = readings[0].get("sampledValue")
    if not isinstance(samples, list) or not samples or not isinstance(samples[0], dict):
        return None
    return samples[0]


@settings(max_examples=120, deadline=None)
@given(frame=st.sampled_from(FRAMES), edits=st.lists(
    st.tuples(st.sampled_from(["drop", "set", "nest"]), st.integers(0, 5), values), max_size=3))
def test_accepts_and_refuses_as_the_library_does(
        frame: tuple[str, bool, dict[str, Any]],
        edits: list[tuple[str, int, Any]]) -> None:
    action, is_call, original = frame
    payload = copy.deepcopy(original)
    for how, index, value in edits:
        keys = sorted(payload) or ["x"]
        key = keys[index % len(keys)]
        if how == "drop":
            payload.pop(key, None)
        elif how == "set":
            payload[key] = value
        elif (sample := _first_sample(payload)) is not None:
            sample["value"] = value
    sent = copy.deepcopy(payload)
    ours = asyncio.run(_ours(_message(action, is_call, payload)))
    assert payload == sent  # nothing filled in or converted
    assert ours == asyncio.run(_library(_message(action, is_call, copy.deepcopy(sent))))


@pytest.mark.parametrize(("action", "is_call", "payload"), FRAMES)
def test_real_frames_pass_without_the_library(action: str, is_call: bool,
                                               payload: dict[str, Any]) -> None:
    check = compiled(2 if is_call else 3, action, "1.6")
    assert check is not None
    check(copy.deepcopy(payload))


async def test_decimal_schemas_and_unknown_actions_are_left_to_the_library() -> None:
    assert compiled(2, "SetChargingProfile", "1.6") is None  # multipleOf: Decimal floats
    assert compiled(2, "RemoteStartTransaction", "1.6") is None
    assert compiled(2, "NoSuchAction", "1.6") is None
    # Asking for them left the library's own Decimal check intact (its cache is shared).
    limit = {"connectorId": 1, "idTag": "t", "chargingProfile": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "W", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 11000.0}]}}}
    await validate(Call("1", "RemoteStartTransaction", limit), "1.6")
