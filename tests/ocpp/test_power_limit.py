"""A power limit as real chargers take it (OCPP 1.6 SetChargingProfile), with raw frames.

- EVBox (https://github.com/lbbrhzn/ocpp/issues/221) reports
  `ChargingScheduleAllowedChargingRateUnit` = `Current,Power`: strom sends W.
- A charger that takes amps only gets amps per phase for three phases at 230 V.
- A charger refused a Relative ChargePointMaxProfile with PropertyConstraintViolation
  (https://github.com/lbbrhzn/ocpp/issues/1565): strom sends Absolute profiles.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from strom.chargers.control import ControlResult, Outcome
from strom.timeutil import parse_iso, utcnow
from tests.ocpp.conftest import Ocpp
from tests.polling import eventually


async def recv(ws: ClientConnection) -> list[Any]:
    async with asyncio.timeout(5):
        return json.loads(await ws.recv())


async def limit_as_seen(ocpp: Ocpp, units: str | None, connector: int,
                        watts: float) -> tuple[dict[str, Any], ControlResult]:
    """What the charger receives for a limit, when it reports `units` (None: unknown key)."""
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        async def probe() -> bool:
            return ocpp.central.is_connected("cp-1")

        await eventually(probe, bool, seconds=5)
        limit = asyncio.create_task(ocpp.central.control.set_power_limit("cp-1", connector,
                                                                         watts))
        asked = await recv(ws)
        assert asked[2:] == ["GetConfiguration", {"key": [
            "ChargingScheduleAllowedChargingRateUnit", "SupportedFeatureProfiles"]}]
        key = "ChargingScheduleAllowedChargingRateUnit"
        await ws.send(json.dumps([3, asked[1], {"configurationKey": [
            {"key": key, "readonly": True, "value": units}]} if units is not None
            else {"unknownKey": [key]}]))
        profile = await recv(ws)
        assert profile[2] == "SetChargingProfile"
        await ws.send(json.dumps([3, profile[1], {"status": "Accepted"}]))
        return profile[3], await limit


@pytest.mark.parametrize(("units", "unit", "limit"), [
    ("Current,Power", "W", 11000.0),  # EVBox Elvi
    (None, "W", 11000.0),
    ("Current", "A", 15.9),  # 11 kW / (3 × 230 V), rounded down
])
async def test_limit_in_the_unit_the_charger_takes(ocpp: Ocpp, units: str | None, unit: str,
                                                   limit: float) -> None:
    sent, result = await limit_as_seen(ocpp, units, 1, 11_000)
    assert result == ControlResult(Outcome.ACCEPTED, "Accepted")
    profile = sent["csChargingProfiles"]
    assert (sent["connectorId"], profile["chargingProfileId"], profile["stackLevel"],
            profile["chargingProfilePurpose"], profile["chargingProfileKind"]) == (
        1, 8401, 0, "TxDefaultProfile", "Absolute")
    schedule = profile["chargingSchedule"]
    assert schedule["chargingRateUnit"] == unit
    assert schedule["chargingSchedulePeriod"][0]["limit"] == limit
    assert schedule["chargingSchedulePeriod"][0].get("numberPhases") == (
        3 if unit == "A" else None)
    started = (utcnow() - parse_iso(schedule["startSchedule"])).total_seconds()
    assert 55 <= started <= 70  # a minute ago: in force even on a charger whose clock lags


async def test_the_whole_charger_gets_an_absolute_max_profile(ocpp: Ocpp) -> None:
    sent, _ = await limit_as_seen(ocpp, "Current,Power", 0, 22_000)
    profile = sent["csChargingProfiles"]
    assert (sent["connectorId"], profile["chargingProfileId"],
            profile["chargingProfilePurpose"], profile["chargingProfileKind"]) == (
        0, 8400, "ChargePointMaxProfile", "Absolute")


async def test_a_charger_without_smart_charging_is_not_asked(ocpp: Ocpp) -> None:
    """A charger that lists its profiles without SmartCharging gets no SetChargingProfile
    (it would only refuse it): the limit is NOT_SUPPORTED at once, saying why."""
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        async def probe() -> bool:
            return ocpp.central.is_connected("cp-1")

        await eventually(probe, bool, seconds=5)
        limit = asyncio.create_task(ocpp.central.control.set_power_limit("cp-1", 1, 11_000))
        asked = await recv(ws)
        await ws.send(json.dumps([3, asked[1], {"configurationKey": [
            {"key": "SupportedFeatureProfiles", "readonly": True,
             "value": "Core,FirmwareManagement,LocalAuthListManagement,Reservation"}]}]))
        result = await limit
        assert result.outcome == Outcome.NOT_SUPPORTED and "SmartCharging" in result.reason
        with pytest.raises(TimeoutError):  # nothing more was sent
            async with asyncio.timeout(0.2):
                await ws.recv()


@pytest.mark.parametrize(("answer", "watts", "outcome"), [
    ({"status": "Accepted", "connectorId": 1, "chargingSchedule": {
        "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400}]}},
     7400.0, Outcome.ACCEPTED),
    # A charger that keeps amps answers in amps: 16 A on 3 phases at 230 V.
    ({"status": "Accepted", "chargingSchedule": {
        "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}},
     11_040.0, Outcome.ACCEPTED),
    ({"status": "Accepted"}, None, Outcome.ACCEPTED),  # no limit in force
    ({"status": "Rejected"}, None, Outcome.REJECTED),
])
async def test_the_limit_is_read_back(ocpp: Ocpp, answer: dict[str, Any], watts: float | None,
                                      outcome: Outcome) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        async def probe() -> bool:
            return ocpp.central.is_connected("cp-1")

        await eventually(probe, bool, seconds=5)
        reading = asyncio.create_task(ocpp.central.control.read_power_limit("cp-1", 1))
        asked = await recv(ws)
        assert asked[2:] == ["GetCompositeSchedule", {"connectorId": 1, "duration": 60,
                                                      "chargingRateUnit": "W"}]
        await ws.send(json.dumps([3, asked[1], answer]))
        result = await reading
        assert (result.watts, result.result.outcome) == (watts, outcome)
