"""Every bad frame gets a CALLERROR or a clean close, and the server keeps serving others."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from strom.store.db import Database
from tests.ocpp.conftest import Ocpp, start_ocpp

BOOT = [2, "boot-1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]


async def exchange(ws: ClientConnection, frame: str | bytes) -> list:
    await ws.send(frame)
    async with asyncio.timeout(5):
        return json.loads(await ws.recv())


async def still_serves(ocpp: Ocpp) -> None:
    """Another charger gets a normal answer."""
    async with connect(ocpp.url("cp-2"), subprotocols=["ocpp1.6"]) as other:  # type: ignore[list-item]
        answer = await exchange(other, json.dumps(BOOT))
        assert answer[:2] == [3, "boot-1"] and answer[2]["status"] == "Accepted"


@pytest.mark.parametrize(("frame", "code", "unique_id"), [
    ("this is not json", "FormationViolation", "-1"),
    ('{"an": "object"}', "FormationViolation", "-1"),
    ("[]", "FormationViolation", "-1"),
    ('[7, "abc", "Heartbeat", {}]', "FormationViolation", "abc"),
    ('["2", "abc", "Heartbeat", {}]', "FormationViolation", "abc"),
    ('[2, 42, "Heartbeat", {}]', "FormationViolation", "-1"),
    ('[2, "abc", "Heartbeat"]', "FormationViolation", "abc"),
    ('[2, "abc", "Heartbeat", []]', "FormationViolation", "abc"),
    ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', "FormationViolation", "-1"),
    ('[2, "abc", "NoSuchAction", {}]', "NotImplemented", "abc"),
    ('[2, "abc", "StatusNotification", {"connectorId": 1}]', "ProtocolError",
     "abc"),
    ('[2, "abc", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",'
     ' "status": "Sleeping"}]', "FormationViolation", "abc"),
    ('[2, "abc", "Heartbeat", {"unexpected": true}]', "FormationViolation", "abc"),
    ('[2, "abc", "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,'
     ' "timestamp": "yesterday"}]', "TypeConstraintViolation", "abc"),
    ('[2, "abc", "StopTransaction", {"meterStop": "lots", "timestamp": "2026-01-01T00:00:00Z",'
     ' "transactionId": 1}]', "TypeConstraintViolation", "abc"),
    # MeterValues is handled on the payload as sent (`on_payload`): the same schema answers.
    ('[2, "abc", "MeterValues", {"connectorId": 1}]', "ProtocolError", "abc"),
    ('[2, "abc", "MeterValues", {"connectorId": "one", "meterValue": [{"timestamp":'
     ' "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}]}]',
     "TypeConstraintViolation", "abc"),
    ('[2, "abc", "MeterValues", {"connectorId": 1, "meterValue": []}]', "FormationViolation", "abc"),
    ('[2, "abc", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp":'
     ' "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1", "unit": "Joule"}]}]}]',
     "FormationViolation", "abc"),
    ('[2, "abc", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp":'
     ' "2026-01-01T00:00:00Z", "sampled_value": [{"value": "1"}]}]}]', "FormationViolation", "abc"),
])
async def test_malformed_frames_get_a_callerror(ocpp: Ocpp, frame: str, code: str,
                                                unique_id: str) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        answer = await exchange(ws, frame)
        assert answer[0] == 4 and answer[1] == unique_id
        assert answer[2] == code, answer
        assert answer[3]  # a description a person can read
        # the same connection keeps working
        assert (await exchange(ws, json.dumps(BOOT)))[0] == 3
    await still_serves(ocpp)


async def test_binary_frame_gets_a_callerror(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        answer = await exchange(ws, b"\x00\x01binary")
        assert answer[:3] == [4, "-1", "FormationViolation"]


async def test_oversized_frame_closes_cleanly(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                       max_size=None) as ws:
        huge = json.dumps([2, "big", "DataTransfer", {"vendorId": "v", "data": "x" * 100_000}])
        await ws.send(huge)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # too big
    await still_serves(ocpp)


async def test_unsolicited_results_and_errors_are_ignored(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps([3, "nobody-asked", {}]))
        await ws.send(json.dumps([4, "nobody-asked", "GenericError", "", {}]))
        assert (await exchange(ws, json.dumps(BOOT)))[:2] == [3, "boot-1"]


async def test_rate_limit_answers_generic_error(db: Database) -> None:
    server, bus = await start_ocpp(db, rate_limit_per_second=1.0, rate_limit_burst=3)
    try:
        async with connect(server.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            answers = [await exchange(ws, json.dumps([2, f"h{i}", "Heartbeat", {}]))
                       for i in range(6)]
        assert [a[0] for a in answers[:3]] == [3, 3, 3]
        limited = [a for a in answers[3:] if a[0] == 4]
        assert limited and limited[0][2] == "GenericError" and "slow down" in limited[0][3]
    finally:
        await server.central.close()
        await bus.close()


frames = st.one_of(
    st.text(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=5)
                 | st.dictionaries(st.text(max_size=10), inner, max_size=5),
                 max_leaves=20).map(json.dumps),
    st.tuples(st.sampled_from([2, 3, 4, "2", None]), st.text(max_size=40),
              st.sampled_from(["Heartbeat", "BootNotification", "StartTransaction",
                               "MeterValues", "StopTransaction", "X"]),
              st.dictionaries(st.sampled_from(["connectorId", "idTag", "meterStart",
                                               "timestamp", "meterValue", "transactionId"]),
                              st.one_of(st.integers(), st.text(max_size=30), st.none(),
                                        st.lists(st.integers(), max_size=3)), max_size=6))
    .map(lambda t: json.dumps(list(t))),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames)
async def test_fuzzed_frames_always_get_an_answer(ocpp: Ocpp, frame: str) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await ws.send(frame)
        parsed = None
        try:
            parsed = json.loads(frame)
        except ValueError:
            pass
        expects_answer = not (isinstance(parsed, list) and len(parsed) > 1
                              and parsed[0] in (3, 4) and isinstance(parsed[1], str)
                              and 0 < len(parsed[1]) <= 36
                              and (len(parsed) == 3 and isinstance(parsed[2], dict)
                                   if parsed[0] == 3 else len(parsed) == 5
                                   and isinstance(parsed[2], str) and isinstance(parsed[3], str)
                                   and isinstance(parsed[4], dict)))
        if expects_answer:
            answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert answer[0] in (3, 4)
        assert (await exchange(ws, json.dumps(BOOT)))[:2] == [3, "boot-1"]
