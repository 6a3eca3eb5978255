"""strom's own OCPP-J session (`strom.ocpp.rpc`): what it promises, pinned with raw frames.

The ocpp library's ChargePoint is no longer under the central system, so these pin what
strom took over from it: answers matched to strom's calls by unique id (strays and late
answers dropped, the charger's own CALLs answered while strom waits), one call in flight at a
time, a call ending at once when the charger goes away, answers that do not fit refused, and
the after-hook running only once the answer is out.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from strom.chargers.control import ControlResult, Outcome
from strom.events import MeterSample
from strom.store.db import Database
from strom.timeutil import parse_iso
from tests.ocpp.conftest import Ocpp, start_ocpp
from tests.polling import eventually

BOOT = [2, "boot-1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]


async def recv(ws: ClientConnection) -> list[Any]:
    async with asyncio.timeout(5):
        return json.loads(await ws.recv())


async def connected(ocpp: Ocpp, cp_id: str = "cp-1") -> None:
    async def probe() -> bool:
        return ocpp.central.is_connected(cp_id)

    await eventually(probe, bool, seconds=5)


async def test_answers_are_matched_to_the_call_by_unique_id(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await connected(ocpp)
        unlock = asyncio.create_task(ocpp.central.control.unlock("cp-1", 1))
        asked = await recv(ws)
        assert asked[0] == 2 and asked[2] == "UnlockConnector" and asked[3] == {"connectorId": 1}
        # A stray answer, and the charger's own CALL while strom waits: the call goes on
        # waiting, the CALL is answered at once.
        await ws.send(json.dumps([3, "not-" + asked[1][:30], {"status": "UnlockFailed"}]))
        await ws.send(json.dumps([4, "other", "GenericError", "", {}]))
        await ws.send(json.dumps([2, "hb", "Heartbeat", {}]))
        heartbeat = await recv(ws)
        assert heartbeat[:2] == [3, "hb"] and "currentTime" in heartbeat[2]
        assert not unlock.done()
        await ws.send(json.dumps([3, asked[1], {"status": "Unlocked"}]))
        assert await unlock == ControlResult(Outcome.ACCEPTED, "Unlocked")


async def test_one_call_in_flight_and_late_answers_dropped(db: Database) -> None:
    ocpp, bus = await start_ocpp(db, call_timeout=0.5)
    control = ocpp.central.control
    try:
        async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            await connected(ocpp)
            first = asyncio.create_task(control.reset("cp-1"))
            second = asyncio.create_task(control.unlock("cp-1", 2))
            reset = await recv(ws)
            assert reset[2] == "Reset"
            # OCPP-J §4.1.1: the second CALL waits until the first is answered or timed out.
            with_nothing_else = asyncio.create_task(ws.recv())
            assert (await first).outcome == Outcome.TIMEOUT
            unlock = json.loads(await asyncio.wait_for(with_nothing_else, 5))
            assert unlock[2] == "UnlockConnector"
            # The late answer to Reset is not taken for UnlockConnector's.
            await ws.send(json.dumps([3, reset[1], {"status": "Accepted"}]))
            await ws.send(json.dumps([3, unlock[1], {"status": "UnlockFailed"}]))
            assert (await second).status == "UnlockFailed"
    finally:
        await ocpp.central.close()
        await bus.close()


async def test_a_call_ends_when_the_charger_goes_away(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await connected(ocpp)
        pending = asyncio.create_task(ocpp.central.control.reset("cp-1"))
        await recv(ws)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert (await pending).outcome == Outcome.NOT_CONNECTED
    assert loop.time() - began < 1.5  # not the call timeout (2 s)


async def test_answers_that_do_not_fit_are_errors(ocpp: Ocpp) -> None:
    control = ocpp.central.control
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await connected(ocpp)
        for answer in ({"status": "Maybe"}, {"status": "Accepted", "extra": 1}, {}):
            call = asyncio.create_task(control.reset("cp-1"))
            asked = await recv(ws)
            await ws.send(json.dumps([3, asked[1], answer]))
            result = await call
            assert (result.outcome, result.code) == (Outcome.ERROR, "InvalidResponse"), answer
            assert "answered Reset wrongly" in result.reason
        call = asyncio.create_task(control.reset("cp-1"))
        asked = await recv(ws)
        await ws.send(json.dumps([4, asked[1], "Coffee", "no such code", {}]))
        assert (await call).code == "InvalidResponse"
        call = asyncio.create_task(control.reset("cp-1"))
        asked = await recv(ws)
        await ws.send(json.dumps([4, asked[1], "NotSupported", "no resets here", {}]))
        refused = await call
        assert (refused.outcome, refused.code) == (Outcome.NOT_SUPPORTED, "NotSupported")
        assert refused.reason == "charge point cp-1 refused Reset: NotSupported no resets here"


async def test_the_after_hook_runs_once_the_answer_is_out(ocpp: Ocpp) -> None:
    booted: list[str] = []
    ocpp.central.context.on_booted = booted.append
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps(BOOT))
        assert (await recv(ws))[:2] == [3, "boot-1"]
        assert booted == ["cp-1"]
        # A boot the schema refuses is answered with a CALLERROR, and no hook runs.
        await ws.send(json.dumps([2, "boot-2", "BootNotification", {"chargePointVendor": "V"}]))
        refused = await recv(ws)
        assert refused[:3] == [4, "boot-2", "ProtocolError"], refused  # 1.6: incomplete
        assert booted == ["cp-1"]


METER_VALUES = {
    "ocpp1.6": {"connectorId": 1, "meterValue": [{"timestamp": "2026-11-27T10:00:00Z",
                                                   "sampledValue": [{"value": "1.5",
                                                                     "unit": "kWh"}]}]},
    "ocpp2.0.1": {"evseId": 1, "meterValue": [{"timestamp": "2026-11-27T10:00:00Z",
                                               "sampledValue": [{
                                                   "value": 1.5,
                                                   "measurand": "Energy.Active.Import.Register",
                                                   "unitOfMeasure": {"unit": "kWh"}}]}]},
}


@pytest.mark.parametrize("protocol", list(METER_VALUES))
async def test_the_calls_sent_all_day_are_answered_as_the_library_would(
        ocpp: Ocpp, protocol: str) -> None:
    """Heartbeat and MeterValues skip the library's key conversion and payload classes
    (`on_payload`): the answers on the wire are its answers, the reading is read as sent."""
    async with ocpp.bus.listen(MeterSample) as samples, \
            connect(ocpp.url("cp-1"), subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps([2, "hb", "Heartbeat", {}]))
        heartbeat = await recv(ws)
        assert heartbeat[:2] == [3, "hb"] and list(heartbeat[2]) == ["currentTime"]
        assert parse_iso(heartbeat[2]["currentTime"]).tzinfo is not None
        await ws.send(json.dumps([2, "mv", "MeterValues", METER_VALUES[protocol]]))
        assert await recv(ws) == [3, "mv", {}]
        async with asyncio.timeout(5):
            sample = await samples.get()
    assert (sample.cp_id, sample.connector_id, sample.transaction_id, sample.energy_wh,
            sample.source) == ("cp-1", 1, None, 1500.0, "register")
