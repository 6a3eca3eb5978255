"""The operator rejects a charger (`strom cp add --boot rejected`, the API's `boot`): its
BootNotification is answered Rejected with a retry interval, everything else it sends gets a
SecurityError and changes nothing, and strom configures nothing on it — for 2.0.1 (the ocpp
library's v201 ChargePoint) and 1.6 (raw frames). Accepted again, its next boot gets in."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner
from ocpp.exceptions import SecurityError
from ocpp.v201 import ChargePoint, call
from websockets.asyncio.client import connect

from strom.chargers.control import ControlDispatcher, Outcome
from strom.cli import cli
from strom.ocpp.charge_point import REJECTED_INTERVAL
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.timeutil import iso
from tests.ocpp.conftest import Accepting, Ocpp
from tests.ocpp.test_cert_signing import call16
from tests.polling import eventually

BOOT16 = {"chargePointVendor": "V", "chargePointModel": "M"}


@pytest.fixture
async def rejected(ocpp: Ocpp) -> Ocpp:
    ocpp.central.authorizer = Accepting()
    await ocpp.charge_points.update("cp-1", boot_status="Rejected")
    return ocpp


async def test_a_rejected_201_charger_may_send_nothing_but_its_boot(rejected: Ocpp) -> None:
    async with connect(rejected.url("cp-1"), subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        charger = ChargePoint("cp-1", ws)
        task = asyncio.create_task(charger.start())
        try:
            boot = call.BootNotification(charging_station={"model": "M", "vendorName": "V"},
                                         reason="PowerUp")
            answer = await charger.call(boot)
            assert (answer.status, answer.interval) == ("Rejected", REJECTED_INTERVAL)
            with pytest.raises(SecurityError):
                await charger.call(call.StatusNotification(
                    timestamp=iso(), connector_status="Available", evse_id=1, connector_id=1),
                    suppress=False)
            with pytest.raises(SecurityError):
                await charger.call(call.TransactionEvent(
                    event_type="Started", timestamp=iso(), trigger_reason="Authorized",
                    seq_no=0, transaction_info={"transactionId": "t-1"},
                    id_token={"idToken": "x", "type": "Central"}, evse={"id": 1},
                    meter_value=[{"timestamp": iso(), "sampledValue": [{"value": 5}]}]),
                    suppress=False)
            assert await rejected.transactions.open_for("cp-1") == []
            # Nothing is started on it: no driver pays for a charger strom cannot use.
            chargers = ControlDispatcher(*rejected.central.adapters)
            started = await chargers.start("cp-1", 1, "driver")
            assert started.outcome == Outcome.NOT_CONNECTED
            # The operator accepts it: its next boot gets in, and its messages with it.
            await rejected.charge_points.update("cp-1", boot_status="Accepted")
            assert (await charger.call(boot)).status == "Accepted"
            await charger.call(call.StatusNotification(
                timestamp=iso(), connector_status="Available", evse_id=1, connector_id=1))
        finally:
            task.cancel()
    log = await rejected.event_log.recent("cp-1")
    assert any(e["kind"] == "boot_rejected" for e in log)


async def test_a_rejected_16_charger_is_refused_and_left_alone(rejected: Ocpp) -> None:
    async with connect(rejected.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        kind, _, answer = await call16(ws, "b", "BootNotification", BOOT16)
        assert (kind, answer["status"], answer["interval"]) == (3, "Rejected", REJECTED_INTERVAL)
        refused = await call16(ws, "t", "StartTransaction", {
            "connectorId": 1, "idTag": "x", "meterStart": 0, "timestamp": iso()})
        assert refused[:3] == [4, "t", "SecurityError"]
        assert (await call16(ws, "h", "Heartbeat", {}))[2] == "SecurityError"
        # strom asks it nothing (no metering configuration of a charger it rejected).
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
    assert await rejected.transactions.open_for("cp-1") == []
    cp = await rejected.charge_points.get("cp-1")
    assert cp is not None and cp.vendor is None  # the rejected boot recorded nothing


async def test_an_accepted_16_charger_is_unchanged(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-2"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        assert (await call16(ws, "b", "BootNotification", BOOT16))[2]["status"] == "Accepted"
        await eventually(lambda: ocpp.charge_points.get("cp-2"),
                         lambda cp: cp is not None and cp.vendor == "V")


def test_the_cli_adds_a_rejected_charger(tmp_path: Any) -> None:
    result = CliRunner().invoke(cli, ["cp", "add", "cp-r", "--lat", "1", "--lon", "2",
                                      "--boot", "rejected", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(cli, ["cp", "show", "cp-r", "--data-dir", str(tmp_path)])
    assert json.loads(shown.output)["boot"] == "Rejected"


async def test_only_accepted_or_rejected_is_stored(db: Database) -> None:
    repo = ChargePointRepository(db)
    with pytest.raises(ValueError, match="Accepted or Rejected"):
        await repo.add("cp-x", name="x", lat=0, lon=0, boot_status="Pending")


async def test_a_16_boot_after_the_first_reads_the_operators_word_fresh(ocpp: Ocpp) -> None:
    """The first boot is answered from the handshake's read of the charger (a moment
    before); the operator's change holds from the next boot on, on the same connection."""
    async with connect(ocpp.url("cp-2"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        assert (await _boot16(ws, "b1"))["status"] == "Accepted"
        await ocpp.charge_points.update("cp-2", boot_status="Rejected")
        answer = await _boot16(ws, "b2")
        assert (answer["status"], answer["interval"]) == ("Rejected", REJECTED_INTERVAL)


async def test_a_first_16_boot_long_after_the_handshake_reads_fresh(
        ocpp: Ocpp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("strom.ocpp.charge_point.HANDSHAKE_READ_SECONDS", 0.0)
    async with connect(ocpp.url("cp-2"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await ocpp.charge_points.update("cp-2", boot_status="Rejected")
        assert (await _boot16(ws, "b1"))["status"] == "Rejected"


async def _boot16(ws: Any, unique_id: str) -> Any:
    """The answer to a BootNotification (strom's own calls meanwhile left unanswered)."""
    await ws.send(json.dumps([2, unique_id, "BootNotification", BOOT16]))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame[:2] == [3, unique_id]:
            return frame[2]
