"""Every Core message from a charger, sent by the ocpp library's own ChargePoint as client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect

from strom.events import (
    ChargePointBooted,
    ChargePointConnected,
    ChargePointDisconnected,
    ConnectorStatusChanged,
    MeterSample,
    TransactionStarted,
    TransactionStopped,
)
from tests.ocpp.conftest import Ocpp

NOW = "2026-11-25T10:00:00Z"


class Client(ChargePoint):
    """The ocpp library's charge point, answering RemoteStart like a real charger would."""

    remote_starts: list[str]

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, **kwargs: object) -> object:
        from ocpp.v16 import call_result
        self.remote_starts.append(id_tag)
        return call_result.RemoteStartTransaction(status="Accepted")


@asynccontextmanager
async def client(ocpp: Ocpp, cp_id: str = "cp-1") -> AsyncIterator[Client]:
    async with connect(ocpp.url(cp_id), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        cp = Client(cp_id, ws, response_timeout=5)
        cp.remote_starts = []
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()


async def next_of(queue: asyncio.Queue, kind: type):  # noqa: ANN201
    async with asyncio.timeout(5):
        while True:
            event = await queue.get()
            if isinstance(event, kind):
                return event


async def test_boot_heartbeat_status_are_answered_and_stored(ocpp: Ocpp) -> None:
    async with ocpp.bus.listen() as events:
        async with client(ocpp) as cp:
            boot = await cp.call(call.BootNotification(
                charge_point_vendor="Acme", charge_point_model="Wallbox 11",
                charge_point_serial_number="SN-7", firmware_version="1.2.3"))
            assert boot.status == "Accepted"
            assert boot.interval == 300
            beat = await cp.call(call.Heartbeat())
            assert beat.current_time.endswith("Z")
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError",
                                                  status="Available"))
            await cp.call(call.StatusNotification(connector_id=2, error_code="GroundFailure",
                                                  status="Faulted", info="RCD tripped",
                                                  vendor_error_code="E42"))
            assert await next_of(events, ChargePointConnected) == ChargePointConnected("cp-1")
            booted = await next_of(events, ChargePointBooted)
            assert (booted.vendor, booted.model) == ("Acme", "Wallbox 11")
            status = await next_of(events, ConnectorStatusChanged)
            assert (status.connector_id, status.status) == (1, "Available")

            stored = await ocpp.charge_points.get("cp-1")
            assert stored is not None and stored.connected
            assert (stored.vendor, stored.serial_number, stored.firmware) == ("Acme", "SN-7", "1.2.3")
            assert stored.connector(1).status == "Available"
            assert stored.connector(2).status == "Faulted"
            assert stored.connector(2).error_code == "GroundFailure"
            logged = await ocpp.event_log.recent("cp-1")
            assert "boot" in [e["kind"] for e in logged]
            # The fault as the charger told it, in the event log's own (snake_case) keys.
            assert [e["payload"] for e in logged if e["kind"] == "status"] == [
                {"connector": 2, "status": "Faulted", "error_code": "GroundFailure",
                 "info": "RCD tripped", "vendor_error_code": "E42"}]
            assert ocpp.central.is_connected("cp-1")
        assert await next_of(events, ChargePointDisconnected) == ChargePointDisconnected(
            "cp-1")
    assert not ocpp.central.is_connected("cp-1")
    stored = await ocpp.charge_points.get("cp-1")
    assert stored is not None and not stored.connected


async def test_transaction_with_meter_values_in_any_unit(ocpp: Ocpp) -> None:
    async with ocpp.bus.listen(TransactionStarted, MeterSample, TransactionStopped) as events, \
            client(ocpp) as cp:
        auth = await cp.call(call.Authorize(id_tag="RFID-UNKNOWN"))
        assert auth.id_tag_info["status"] == "Invalid"  # no session owns this tag
        start = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-1",
                                                    meter_start=1000, timestamp=NOW))
        tx_id = start.transaction_id
        started = await next_of(events, TransactionStarted)
        assert (started.transaction_id, started.meter_start_wh, started.id_tag) == \
            (tx_id, 1000.0, "TAG-1")

        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[{
            "timestamp": "2026-11-25T10:01:00Z",
            "sampledValue": [
                {"value": "1.25", "measurand": "Energy.Active.Import.Register", "unit": "kWh",
                 "context": "Sample.Periodic"},
                {"value": "3.6", "measurand": "Power.Active.Import", "unit": "kW", "phase": "L1"},
                {"value": "3.7", "measurand": "Power.Active.Import", "unit": "kW", "phase": "L2"},
                {"value": "3.7", "measurand": "Power.Active.Import", "unit": "kW", "phase": "L3"},
                {"value": "64", "measurand": "SoC", "unit": "Percent", "location": "EV"},
            ]}]))
        sample = await next_of(events, MeterSample)
        assert sample.energy_wh == 1250.0
        assert sample.power_w == 11000.0
        assert sample.soc_percent == 64.0

        stop = await cp.call(call.StopTransaction(
            meter_stop=2500, timestamp="2026-11-25T10:30:00Z", transaction_id=tx_id,
            reason="Remote", id_tag="TAG-1", transaction_data=[{
                "timestamp": "2026-11-25T10:30:00Z",
                "sampledValue": [{"value": "2500", "context": "Transaction.End"}]}]))
        assert stop.id_tag_info["status"] == "Accepted"
        stopped = await next_of(events, TransactionStopped)
        assert (stopped.transaction_id, stopped.meter_stop_wh, stopped.reason) == \
            (tx_id, 2500.0, "Remote")

    tx = await ocpp.transactions.get(tx_id)
    assert tx is not None and not tx.open and tx.stop_reason == "Remote"
    stored = await ocpp.transactions.meter_values(tx_id)
    energy = [(r.value, r.unit) for r in stored if r.measurand.startswith("Energy")]
    assert energy == [(1250.0, "Wh"), (2500.0, "Wh")]
    assert {r.phase for r in stored if r.measurand == "Power.Active.Import"} == {"L1", "L2", "L3"}


async def test_stop_of_unknown_transaction_is_still_acknowledged(ocpp: Ocpp) -> None:
    async with ocpp.bus.listen(TransactionStopped) as events, client(ocpp) as cp:
        answer = await cp.call(call.StopTransaction(meter_stop=5, timestamp=NOW,
                                                    transaction_id=987654))
        assert answer.id_tag_info is None
        await asyncio.sleep(0.1)
        assert events.empty()


async def test_retried_start_transaction_creates_one_transaction(ocpp: Ocpp) -> None:
    async with ocpp.bus.listen(TransactionStarted) as events, client(ocpp) as cp:
        request = call.StartTransaction(connector_id=2, id_tag="TAG-R", meter_start=0,
                                        timestamp=NOW)
        first = await cp.call(request)
        again = await cp.call(request)
        assert first.transaction_id == again.transaction_id
        await next_of(events, TransactionStarted)
        await asyncio.sleep(0.1)
        assert events.empty(), "a retry must not start a second transaction"
    assert len(await ocpp.transactions.open_for("cp-1")) == 1


async def test_data_transfer_and_notifications_are_logged(ocpp: Ocpp) -> None:
    async with client(ocpp) as cp:
        answer = await cp.call(call.DataTransfer(vendor_id="com.example", message_id="x",
                                                 data="hello"))
        assert answer.status == "UnknownVendorId"
        await cp.call(call.DiagnosticsStatusNotification(status="Uploaded"))
        await cp.call(call.FirmwareStatusNotification(status="Installed"))
    kinds = {e["kind"]: e["payload"] for e in await ocpp.event_log.recent("cp-1")}
    assert kinds["data_transfer"]["data"] == "hello"
    assert kinds["diagnostics_status"] == {"status": "Uploaded"}
    assert kinds["firmware_status"] == {"status": "Installed"}


async def test_remote_start_reaches_the_charger(ocpp: Ocpp) -> None:
    async with client(ocpp) as cp:
        for _ in range(50):
            if ocpp.central.is_connected("cp-1"):
                break
            await asyncio.sleep(0.02)
        assert (await ocpp.central.control.start("cp-1", 1, "SESSION-TAG")).ok
        assert cp.remote_starts == ["SESSION-TAG"]
