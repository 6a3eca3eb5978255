"""OCPP 2.0.1 transactions beside 1.6's: TransactionEvent Started/Updated/Ended, offline
replay, metering, restarts, with the ocpp library's v201 ChargePoint as the charger."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect

from strom.chargers.control import (
    Trigger,
)
from strom.events import (
    ChargePointBooted,
    ConnectorStatusChanged,
    MeterSample,
    TransactionStarted,
    TransactionStopped,
)
from strom.timeutil import iso
from tests.ocpp.charger201 import Running, reading, running_charger201
from tests.ocpp.conftest import Accepting, Ocpp
from tests.ocpp.test_core_messages import next_of
from tests.polling import eventually


async def test_a_remote_started_transaction_publishes_what_1_6_does(accepting: Ocpp) -> None:
    ocpp = accepting
    async with ocpp.bus.listen() as queue:
        async with running_charger201(ocpp.url(""), "cp-1") as charger:
            booted = await next_of(queue, ChargePointBooted)
            assert (booted.vendor, booted.model) == ("Acme", "Test 201")
            assert (await ocpp.central.control201.start("cp-1", 2, "tag-201")).ok
            started = await next_of(queue, TransactionStarted)
            assert (started.connector_id, started.id_tag) == (2, "tag-201")
            # The register's origin: its Transaction.Begin reading in kWh.
            assert started.meter_start_wh == pytest.approx(1_000_000.0)
            assert charger.asked[0] == ("RequestStartTransaction", {
                "id_token": {"id_token": "tag-201", "type": "Central"}, "evse_id": 2})
            await charger.meter(2, 1_500.0)
            sample = await next_of(queue, MeterSample)  # Started's Transaction.Begin reading
            assert sample.energy_wh == pytest.approx(1_000_000.0)
            sample = await next_of(queue, MeterSample)
            assert sample.transaction_id == started.transaction_id
            assert sample.energy_wh == pytest.approx(1_001_500.0)
            assert sample.power_w == 7_000.0
            status = await next_of(queue, ConnectorStatusChanged)
            while status.status != "Charging":
                status = await next_of(queue, ConnectorStatusChanged)
            assert status.connector_id == 2
            # strom's integer id stands for the charger's string one.
            assert (await ocpp.central.control201.trigger("cp-1", Trigger.METER_VALUES, 2)).ok
            assert charger.asked[-1] == ("TriggerMessage", {
                "requested_message": "TransactionEvent", "evse": {"id": 2}})
            assert (await ocpp.central.control201.stop("cp-1", started.transaction_id)).ok
            stopped = await next_of(queue, TransactionStopped)
            assert stopped.transaction_id == started.transaction_id
            assert stopped.meter_stop_wh == pytest.approx(1_001_500.0)
            assert stopped.reason == "Remote"
    tx = await ocpp.transactions.get(started.transaction_id)
    assert charger.asked[-1] == ("RequestStopTransaction",
                                 {"transaction_id": tx.charger_tx_id if tx else None})
    assert tx is not None and not tx.open


async def test_offline_events_replay_in_order_and_gaps_are_logged(
        accepting: Ocpp, caplog: pytest.LogCaptureFixture) -> None:
    """A charger that lost its connection sends its queued events after reconnecting, with
    `offline: true`; one was lost (seqNo 2): the gap is logged, the energy still right."""
    ocpp = accepting
    async with ocpp.bus.listen(TransactionStopped, TransactionStarted) as queue:
        async with running_charger201(ocpp.url(""), "cp-1") as charger:
            charger.running[1] = Running("offline-tx-1", "tag-offline")
            await charger.event(1, "Started", "Authorized",
                                reading(charger.register_wh, "Transaction.Begin"))
            started = await next_of(queue, TransactionStarted)
        async with running_charger201(ocpp.url(""), "cp-1") as again:
            again.running[1] = charger.running[1]
            with caplog.at_level(logging.WARNING):
                await again.meter(1, 2_000.0)  # seqNo 1
                again.running[1].seq_no += 1  # seqNo 2 never arrives
                for energy in (3_000.0, 4_000.0):
                    await again.event(1, "Updated", "MeterValuePeriodic", reading(
                        again.register_wh + energy), offline=True)
                again.running[1].energy_wh = 4_000.0
                await again._stop(1, "EVDisconnected")
            stopped = await next_of(queue, TransactionStopped)
    assert stopped.transaction_id == started.transaction_id
    assert stopped.meter_stop_wh - started.meter_start_wh == pytest.approx(4_000.0)
    assert stopped.reason == "EVDisconnected"
    assert "seqNo 3 after 1: 1 missing" in caplog.text


async def test_energy_before_the_first_reading_is_not_billed(accepting: Ocpp) -> None:
    """A Started event without meter values binds at the first reading: its register is the
    origin, so an absolute register is never billed as the session's energy."""
    ocpp = accepting
    async with ocpp.bus.listen(TransactionStarted, MeterSample) as queue:
        async with running_charger201(ocpp.url(""), "cp-1") as charger:
            charger.running[1] = Running("late-meter", "tag-late")
            await charger.event(1, "Started", "CablePluggedIn")
            await charger.meter(1, 500.0)
            started = await next_of(queue, TransactionStarted)
            assert started.meter_start_wh == pytest.approx(1_000_500.0)
            await charger.meter(1, 800.0)
            sample = await next_of(queue, MeterSample)
            assert sample.energy_wh == pytest.approx(1_000_500.0)
            sample = await next_of(queue, MeterSample)
            assert sample.energy_wh - started.meter_start_wh == pytest.approx(300.0)


async def test_plugged_in_first_then_paid_binds_at_the_remote_start(accepting: Ocpp) -> None:
    """TxStartPoint EVConnected (the BMW/Delta wallbox's default): the transaction starts at
    the plug, without an idToken; strom's RequestStartTransaction is answered by an Updated
    event with the remoteStartId and the token. The session is billed from there on."""
    ocpp = accepting
    async with ocpp.bus.listen(TransactionStarted, TransactionStopped,
                               ConnectorStatusChanged) as queue:
        async with running_charger201(ocpp.url(""), "cp-1") as charger:
            await charger.status(1, "Occupied")
            charger.running[1] = Running("plugged-first", "")
            await charger.event(1, "Started", "CablePluggedIn",
                                reading(charger.register_wh, "Transaction.Begin"),
                                chargingState="EVConnected")
            status = await next_of(queue, ConnectorStatusChanged)
            while status.connector_id != 1 or status.status == "Available":
                status = await next_of(queue, ConnectorStatusChanged)
            assert status.status == "Preparing"  # free for a payer: nobody's transaction yet
            remote_start_id = 4242
            ocpp.central._v201.remote_starts[("cp-1", remote_start_id)] = "paid-tag"
            await charger.meter(1, 100.0)  # before the payment: never billed
            await charger.event(1, "Updated", "RemoteStart", reading(charger.register_wh + 100),
                                chargingState="Charging", remoteStartId=remote_start_id)
            started = await next_of(queue, TransactionStarted)
            assert (started.id_tag, started.connector_id) == ("paid-tag", 1)
            assert started.meter_start_wh == pytest.approx(1_000_100.0)
            await charger.meter(1, 600.0)
            charger.running[1].energy_wh = 600.0
            await charger._stop(1)
            stopped = await next_of(queue, TransactionStopped)
    assert stopped.meter_stop_wh - started.meter_start_wh == pytest.approx(500.0)


async def test_the_charger_s_transaction_id_survives_a_restart(db) -> None:  # noqa: ANN001
    """strom restarts mid-transaction: the charger's Updated and Ended events still find
    strom's transaction (the mapping is in the store, not in memory)."""
    from strom.config import OcppSettings
    from strom.ocpp.central_system import CentralSystem
    from tests.ocpp.conftest import start_ocpp
    first, bus = await start_ocpp(db)
    first.central.authorizer = Accepting()
    async with first.bus.listen(TransactionStarted) as queue:
        async with running_charger201(first.url(""), "cp-1") as charger:
            charger.running[1] = Running("across-restart", "tag-restart")
            await charger.event(1, "Started", "Authorized",
                                reading(charger.register_wh, "Transaction.Begin"))
            started = await next_of(queue, TransactionStarted)
    await first.central.close()
    central = CentralSystem(OcppSettings(port=0), first.charge_points, first.transactions,
                            first.event_log, bus)
    central.authorizer = Accepting()
    await central.start()
    try:
        async with bus.listen(TransactionStopped, TransactionStarted) as queue:
            url = f"ws://127.0.0.1:{central.port}/ocpp/"
            async with running_charger201(url, "cp-1") as again:
                again.running[1] = charger.running[1]
                await again.meter(1, 250.0)
                await again._stop(1, "Local")
                stopped = await next_of(queue, TransactionStopped)
            assert queue.empty()  # no second TransactionStarted
    finally:
        await central.close()
        await bus.close()
    assert stopped.transaction_id == started.transaction_id
    assert stopped.meter_stop_wh - started.meter_start_wh == pytest.approx(250.0)


async def test_an_occupied_evse_with_a_transaction_from_before_a_restart_is_not_free(
        accepting: Ocpp) -> None:
    """strom forgot the EVSE's charging state (a restart); the store still knows the open
    transaction, so Occupied is Charging, not a free Preparing connector."""
    ocpp = accepting
    async with running_charger201(ocpp.url(""), "cp-1") as charger:
        charger.running[2] = Running("still-running", "tag-running")
        await charger.event(2, "Started", "Authorized", reading(charger.register_wh))
        ocpp.central._v201.evses.clear()  # what a restart loses
        await charger.status(2, "Occupied")
        cp = await ocpp.charge_points.get("cp-1")
        assert cp is not None and cp.connector(2).status == "Charging"


async def test_a_late_event_after_the_end_does_not_look_like_charging(accepting: Ocpp) -> None:
    ocpp = accepting
    async with ocpp.bus.listen(ConnectorStatusChanged, TransactionStopped) as queue:
        async with running_charger201(ocpp.url(""), "cp-1") as charger:
            charger.running[1] = Running("late", "tag-late-event")
            await charger.event(1, "Started", "Authorized", reading(charger.register_wh))
            tx = charger.running[1]
            await charger._stop(1)
            await next_of(queue, TransactionStopped)
            charger.running[1] = tx  # a duplicate Updated after the Ended
            await charger.event(1, "Updated", "MeterValuePeriodic",
                                reading(charger.register_wh), chargingState="Charging")
            charger.running.pop(1)
            await charger.status(1, "Available")
    cp = await ocpp.charge_points.get("cp-1")
    assert cp is not None and cp.connector(1).status == "Available"
    statuses = []
    while not queue.empty():
        event = queue.get_nowait()
        if isinstance(event, ConnectorStatusChanged) and event.connector_id == 1:
            statuses.append(event.status)
    assert "Charging" not in statuses, statuses


async def test_signed_meter_values_are_kept_for_audit(accepting: Ocpp) -> None:
    ocpp = accepting
    signed = {"signedMeterData": "T0NNRnx7IkZWIjoiMS4wIn0=", "signingMethod": "ECDSA-secp256r1",
              "encodingMethod": "OCMF", "publicKey": "MFkwEwYHKoZIzj0CAQ"}
    async with running_charger201(ocpp.url(""), "cp-1") as charger:
        charger.running[1] = Running("signed", "tag-signed")
        begin = reading(charger.register_wh, "Transaction.Begin")
        begin[0]["sampledValue"][0]["signedMeterValue"] = signed
        await charger.event(1, "Started", "Authorized", begin)
    entries = await eventually(lambda: ocpp.event_log.recent(cp_id="cp-1"), lambda found: any(
        e["kind"] == "signed_meter_values" for e in found))
    kept = next(e for e in entries if e["kind"] == "signed_meter_values")["payload"]
    assert kept["values"] == [signed]  # as the charger sent it


async def test_transaction_events_are_read_and_answered_as_sent(
        accepting: Ocpp, monkeypatch: pytest.MonkeyPatch) -> None:
    """TransactionEvent, sent all day while a car charges, skips the library's key conversion
    and payload classes (`on_payload`, as MeterValues): the same answers on the wire."""
    from strom.ocpp import rpc

    converted: list[object] = []
    convert = rpc.camel_to_snake_case
    monkeypatch.setattr(rpc, "camel_to_snake_case",
                        lambda payload: converted.append(payload) or convert(payload))
    ocpp = accepting

    async def answer(ws: Any, frame: list[Any]) -> list[Any]:
        await ws.send(json.dumps(frame))
        async with asyncio.timeout(5):
            while (got := json.loads(await ws.recv()))[1] != frame[1]:
                pass  # strom's own calls (the sampling set-up after the boot)
        return got  # type: ignore[no-any-return]

    def event(seq_no: int, event_type: str, energy_kwh: float, **more: Any) -> dict[str, Any]:
        return {"eventType": event_type, "timestamp": iso(), "triggerReason": "MeterValuePeriodic",
                "seqNo": seq_no, "transactionInfo": {"transactionId": "tx-raw",
                                                     "chargingState": "Charging"},
                "evse": {"id": 1, "connectorId": 1}, "meterValue": [{
                    "timestamp": iso(), "sampledValue": [{
                        "value": energy_kwh, "measurand": "Energy.Active.Import.Register",
                        "unitOfMeasure": {"unit": "kWh"}}]}], **more}

    async with ocpp.bus.listen() as queue, \
            connect(ocpp.url("cp-1"), subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        boot = {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
        assert (await answer(ws, [2, "b", "BootNotification", boot]))[2]["status"] == "Accepted"
        started = await answer(ws, [2, "s", "TransactionEvent", event(
            0, "Started", 10.0, idToken={"idToken": "tag-raw", "type": "ISO14443"})])
        assert started == [3, "s", {"idTokenInfo": {"status": "Accepted"}}]
        tx = await next_of(queue, TransactionStarted)
        assert (tx.connector_id, tx.id_tag, tx.meter_start_wh) == (1, "tag-raw", 10_000.0)
        assert await answer(ws, [2, "u", "TransactionEvent", event(1, "Updated", 10.5)]) == \
            [3, "u", {}]
        sample = await next_of(queue, MeterSample)
        while sample.energy_wh != 10_500.0:
            sample = await next_of(queue, MeterSample)
        assert sample.transaction_id == tx.transaction_id
        ended = await answer(ws, [2, "e", "TransactionEvent", event(
            2, "Ended", 11.0, transactionInfo={"transactionId": "tx-raw",
                                               "stoppedReason": "EVDisconnected"})])
        assert ended == [3, "e", {}]
        stopped = await next_of(queue, TransactionStopped)
        assert (stopped.meter_stop_wh, stopped.reason) == (11_000.0, "EVDisconnected")
        refused = await answer(ws, [2, "x", "TransactionEvent", {"eventType": "Updated"}])
        assert refused[:3] == [4, "x", "ProtocolError"], refused  # the library's word
    assert not [p for p in converted if isinstance(p, dict) and "transactionInfo" in p]
