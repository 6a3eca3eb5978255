"""OCPP 2.0.1 beside 1.6: negotiation, boot, the core messages, bad input and the
operator's calls, with the ocpp library's v201 ChargePoint as the charger and raw frames (its
transactions: test_v201_transactions.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.v201 import call
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from strom.chargers.control import (
    ControlDispatcher,
    FirmwareRequest,
    Outcome,
    Trigger,
    UploadRequest,
)
from strom.timeutil import iso, utcnow
from tests.ocpp.charger201 import Running, reading, running_charger201
from tests.ocpp.conftest import Accepting, Ocpp
from tests.polling import eventually


async def protocol_of(ocpp: Ocpp, offered: list[str], cp_id: str = "cp-1") -> str | None:
    async with connect(ocpp.url(cp_id), subprotocols=offered) as ws:  # type: ignore[arg-type]
        return ws.subprotocol


@pytest.mark.parametrize(("offered", "chosen"), [
    (["ocpp2.0.1", "ocpp1.6"], "ocpp2.0.1"),
    (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),
    (["ocpp1.6"], "ocpp1.6"),
    (["ocpp1.6", "ocpp2.0.1", "ocpp2.1"], "ocpp2.1"),
])
async def test_the_highest_protocol_both_speak_is_chosen(ocpp: Ocpp, offered: list[str],
                                                         chosen: str) -> None:
    assert await protocol_of(ocpp, offered) == chosen
    cp = await eventually(lambda: ocpp.charge_points.get("cp-1"),
                          lambda cp: cp is not None and cp.ocpp_protocol == chosen)
    assert cp.ocpp_protocol == chosen


async def test_the_allow_list_limits_the_choice(ocpp: Ocpp) -> None:
    await ocpp.charge_points.update("cp-1", ocpp_protocols=("ocpp1.6",))
    assert await protocol_of(ocpp, ["ocpp2.0.1", "ocpp1.6"]) == "ocpp1.6"
    await ocpp.charge_points.update("cp-1", ocpp_protocols=("ocpp2.0.1",))
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
    assert "ocpp2.0.1" in closed.value.rcvd.reason
    # No subprotocol at all means 1.6, which this charger may not use.
    async with connect(ocpp.url("cp-1")) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)


async def test_boot_is_pending_until_strom_takes_payments(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        boot = [2, "b1", "BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"},
                                              "reason": "PowerUp"}]
        await ws.send(json.dumps(boot))
        answer = json.loads(await ws.recv())
        assert answer[2]["status"] == "Pending"
        await ws.send(json.dumps([2, "h1", "Heartbeat", {}]))
        refused = json.loads(await ws.recv())
        assert refused[:3] == [4, "h1", "SecurityError"]
        ocpp.central.authorizer = Accepting()
        await ws.send(json.dumps(boot))
        assert json.loads(await ws.recv())[2]["status"] == "Accepted"
        await ws.send(json.dumps([2, "h2", "Heartbeat", {}]))
        while (frame := json.loads(await ws.recv()))[0] == 2:
            pass  # strom's own calls (it configures the charger's sampling after the boot)
        assert frame[:2] == [3, "h2"]


async def test_2_1_chargers_are_served_by_the_same_handlers(accepting: Ocpp) -> None:
    from ocpp.v21 import ChargePoint as ChargePoint21
    from ocpp.v21 import call as call21
    async with connect(accepting.url("cp-2"), subprotocols=["ocpp2.1"]) as ws:  # type: ignore[list-item]
        charger = ChargePoint21("cp-2", ws, response_timeout=5)
        task = asyncio.create_task(charger.start())
        try:
            boot = await charger.call(call21.BootNotification(
                charging_station={"model": "M21", "vendorName": "V21"}, reason="PowerUp"))
            assert boot.status == "Accepted"
            beat = await charger.call(call21.Heartbeat())
            assert beat.current_time
        finally:
            task.cancel()


async def raw(ocpp: Ocpp, frame: str | bytes) -> list[object]:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        await ws.send(frame)
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


@pytest.mark.parametrize(("frame", "code"), [
    ("not json", "RpcFrameworkError"),
    ('{"a": 1}', "RpcFrameworkError"),
    ('[7, "x1", "Heartbeat", {}]', "MessageTypeNotSupported"),
    ('[2, "x1", "Heartbeat"]', "RpcFrameworkError"),
    ('[2, "x1", "FlyToTheMoon", {}]', "NotImplemented"),
    ('[2, "x1", "NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": '
     '{"requestedEnergyTransfer": "AC_single_phase"}}]', "NotSupported"),
    ('[2, "x1", "Heartbeat", {"extra": 1}]', "FormatViolation"),
    ('[2, "x1", "StatusNotification", {"timestamp": "2026-01-01T00:00:00Z", '
     '"connectorStatus": "Sleeping", "evseId": 1, "connectorId": 1}]', "FormatViolation"),
])
async def test_bad_frames_get_2_0_1_error_codes(accepting: Ocpp, frame: str, code: str) -> None:
    answer = await raw(accepting, frame)
    assert answer[0] == 4 and answer[2] == code, answer


async def test_the_rate_limit_holds_for_2_0_1(db) -> None:  # noqa: ANN001
    from tests.ocpp.conftest import start_ocpp
    server, bus = await start_ocpp(db, rate_limit_per_second=1.0, rate_limit_burst=2)
    try:
        async with connect(server.url("cp-1"), subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            answers = []
            for n in range(4):
                await ws.send(json.dumps([2, f"h{n}", "Heartbeat", {}]))
                answers.append(json.loads(await ws.recv()))
        assert answers[-1][2] == "GenericError"
    finally:
        await server.central.close()
        await bus.close()


async def test_reports_and_security_events_are_kept(accepting: Ocpp) -> None:
    async with running_charger201(accepting.url(""), "cp-1") as charger:
        await charger.call(call.SecurityEventNotification(type="TamperDetectionActivated",
                                                          timestamp=iso()))
        await charger.call(call.NotifyEvent(generated_at=iso(), seq_no=0, event_data=[{
            "eventId": 1, "timestamp": iso(), "trigger": "Alerting", "actualValue": "true",
            "eventNotificationType": "HardWiredNotification",
            "component": {"name": "Connector"}, "variable": {"name": "Problem"}}]))
        await charger.call(call.FirmwareStatusNotification(status="Installed"))
        await charger.call(call.LogStatusNotification(status="Uploaded"))
        result = await charger.call(call.DataTransfer(vendor_id="acme", message_id="x"))
        assert result.status == "UnknownVendorId"
    kinds = {entry["kind"] for entry in await accepting.event_log.recent(cp_id="cp-1")}
    assert {"security_event", "notify_event", "firmware_status", "log_status",
            "data_transfer"} <= kinds


async def test_sampling_is_configured_through_the_device_model(accepting: Ocpp) -> None:
    """A charger that never samples while charging is asked to (SetVariables), with fewer
    measurands when it rejects SoC, and the ended event to carry the register."""
    async with running_charger201(accepting.url(""), "cp-1") as charger:
        setup = await eventually(lambda: _sampling(accepting), lambda s: s is not None)
    assert setup["changed"] == {
        "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import",
        "MeterValueSampleInterval": "30",
        "StopTxnSampledData": "Energy.Active.Import.Register",
        "TxStartedMeasurands": "Energy.Active.Import.Register"}, setup
    assert charger.variables[("SampledDataCtrlr", "TxUpdatedInterval")] == "30"


async def _sampling(ocpp: Ocpp) -> dict[str, dict[str, str]] | None:
    return ocpp.central.sampling("cp-1")


async def test_the_operators_calls_speak_2_0_1(accepting: Ocpp) -> None:
    """Through the dispatcher, as sessions and the admin API call it: each charger is served
    by its own protocol's adapter."""
    central = accepting.central
    chargers = ControlDispatcher(*central.adapters)
    async with running_charger201(accepting.url(""), "cp-1") as charger:
        assert chargers.protocol("cp-1") == "ocpp2.0.1"
        assert (await chargers.reset("cp-1", hard=True)).outcome == Outcome.ACCEPTED
        assert (await chargers.unlock("cp-1", 2)).status == "Unlocked"
        unknown = await chargers.unlock("cp-1", 9)
        assert (unknown.outcome, unknown.status) == (Outcome.NOT_SUPPORTED, "UnknownConnector")
        assert (await chargers.set_availability("cp-1", 0, False)).ok
        assert (await chargers.trigger("cp-1", Trigger.STATUS, 1)).ok
        assert (await chargers.set_power_limit("cp-1", 1, 7_000)).ok
        _, sent = charger.asked[-1]
        schedule = sent["profile"]["charging_schedule"][0]
        assert (sent["evse_id"], sent["profile"]["charging_profile_purpose"],
                sent["profile"]["charging_profile_kind"]) == (1, "TxDefaultProfile", "Absolute")
        assert (schedule["charging_rate_unit"],
                schedule["charging_schedule_period"][0]["limit"]) == ("W", 7_000)
        charger.variables[("SmartChargingCtrlr", "RateUnit")] = "A"  # amps only
        assert (await chargers.set_power_limit("cp-1", 0, 11_040)).ok
        _, sent = charger.asked[-1]
        period = sent["profile"]["charging_schedule"][0]["charging_schedule_period"][0]
        assert sent["profile"]["charging_profile_purpose"] == "ChargingStationMaxProfile"
        assert (period["limit"], period["number_phases"]) == (16.0, 3)
        cleared = await chargers.set_power_limit("cp-1", 1, None)  # none of strom's in force
        assert cleared.ok and charger.asked[-1] == ("ClearChargingProfile", {"id": 8401})
    assert ("Reset", {"type": "Immediate"}) in charger.asked
    assert ("ChangeAvailability", {"status": "Inoperative", "evse": None}) in charger.asked
    assert ("TriggerMessage", {"requested_message": "StatusNotification",
                               "evse": {"id": 1, "connector_id": 1}}) in charger.asked
    assert (await chargers.reset("cp-1")).outcome == Outcome.NOT_CONNECTED


async def test_firmware_and_logs_are_not_sent_as_1_6_frames(accepting: Ocpp) -> None:
    """The 2.0.1 adapter refuses what strom maps for 1.6 only (issue 21): nothing is sent."""
    chargers = ControlDispatcher(*accepting.central.adapters)
    async with running_charger201(accepting.url(""), "cp-1") as charger:
        before = len(charger.asked)
        results = [
            await chargers.update_firmware("cp-1", FirmwareRequest(
                "http://strom.test/firmware/1/t", utcnow(), request_id=1)),
            (await chargers.request_upload("cp-1", UploadRequest(
                "http://strom.test/uploads/1/t", request_id=1))).result,
            await chargers.send_certificate("cp-1", "-----BEGIN CERTIFICATE-----")]
        assert {r.outcome for r in results} == {Outcome.NOT_SUPPORTED}
        assert "nothing was sent" in results[0].reason
        assert len(charger.asked) == before


async def test_unknown_tokens_are_answered_invalid(ocpp: Ocpp) -> None:
    class Refusing:
        async def authorize(self, cp_id: str, connector_id: int | None, id_tag: str) -> str:
            return "Invalid"

    ocpp.central.authorizer = Refusing()
    async with running_charger201(ocpp.url(""), "cp-1") as charger:
        result = await charger.call(call.Authorize(id_token={"idToken": "x", "type": "ISO14443"}))
        assert result.id_token_info["status"] == "Invalid"
        charger.running[1] = Running("rfid", "stranger")
        answer = await charger.event(1, "Started", "Authorized", reading(charger.register_wh))
        assert answer.id_token_info["status"] == "Invalid"


async def test_a_reconnecting_2_0_1_charger_replaces_its_old_socket(accepting: Ocpp) -> None:
    old = await connect(accepting.url("cp-1"), subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
    await eventually(lambda: _connected(accepting), lambda up: up)
    async with running_charger201(accepting.url(""), "cp-1"):
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(old.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
        assert accepting.central.is_connected("cp-1")


async def _connected(ocpp: Ocpp) -> bool:
    return ocpp.central.is_connected("cp-1")
