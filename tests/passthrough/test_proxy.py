"""Passthrough as a proxy: the backend's own traffic goes through strom unchanged."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest
from ocpp.v16 import call

from strom.timeutil import iso
from tests.ocpp.conftest import Ocpp
from tests.passthrough.backend import BACKEND_LOG, OWNER_TAG, PASSWORD, Backend
from tests.passthrough.conftest import recorded_charger
from tests.polling import eventually


def _calls(frames: list[tuple[str, str]], way: str) -> list[str]:
    return [raw for w, raw in frames if w == way and json.loads(raw)[0] == 2]


def _answers(frames: list[tuple[str, str]], way: str) -> list[str]:
    return [raw for w, raw in frames if w == way and json.loads(raw)[0] != 2]


def _without_id(raw: str) -> list[object]:
    data = json.loads(raw)
    return [data[0], *data[2:]]


async def test_the_backends_rfid_session_goes_through_byte_for_byte(
        proxy: Ocpp, backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with recorded_charger(proxy.url(""), "cp-1") as charger:
        await backend.connected.wait()
        auth = await charger.call(call.Authorize(id_tag=OWNER_TAG))
        assert auth.id_tag_info["status"] == "Accepted"
        await charger._start(1, OWNER_TAG)
        assert charger.transactions[1] == 2  # the backend's id, as the backend gave it
        await charger.meter(1, 1500, 7400)
        await charger._stop(2)
        vendor = await charger.call(call.DataTransfer(vendor_id="com.acme", data="x"))
        assert vendor.status == "Accepted" and vendor.data == "hello from com.acme's backend"

        # Everything the charger sent, the backend got, as written; and the other way round.
        assert _calls(charger.frames, "out") == _calls(backend.frames, "in")
        assert _answers(backend.frames, "out") == _answers(charger.frames, "in")
        # Basic auth with the charger's id, as a charger would log in.
        assert backend.auth_headers[0] is not None
        assert backend.auth_headers[0].startswith("Basic ")

        # strom kept its own view from the traffic: the transaction and its reading.
        cp = await proxy.charge_points.get("cp-1")
        assert cp is not None and cp.connector(1) is not None
        assert cp.connector(1).status == "Available"  # type: ignore[union-attr]
        row = await proxy.transactions.get(1)
        assert row is not None and row.id_tag == OWNER_TAG and row.meter_stop_wh == 1500

        # The backend's own calls reach the charger unchanged apart from their ids.
        started = await backend.remote_start(2)
        assert started.status == "Accepted"
        await eventually(lambda: _noop(), lambda _: 2 in charger.transactions)
        assert charger.transactions[2] == 3
        sent, got = _calls(backend.frames, "out"), _calls(charger.frames, "in")
        assert [_without_id(r) for r in sent] == [_without_id(r) for r in got]
        assert [json.loads(r)[1] for r in sent] != [json.loads(r)[1] for r in got]
        stopped = await backend.charger.call(  # type: ignore[union-attr]
            call.RemoteStopTransaction(transaction_id=3))
        assert stopped.status == "Accepted"
        await eventually(lambda: _noop(), lambda _: 2 not in charger.transactions)
        # A pure proxy makes no calls of its own.
        assert {c[2] for c in charger.received_calls()} == {
            "RemoteStartTransaction", "RemoteStopTransaction"}
    # The backend's password is never logged by strom, not even at debug.
    header = base64.b64encode(f"cp-1:{PASSWORD}".encode()).decode()
    logged = [r.getMessage() for r in caplog.records if r.name != BACKEND_LOG]
    assert not [line for line in logged if PASSWORD in line or header in line]


async def test_calls_strom_does_not_know_pass_through(proxy: Ocpp, backend: Backend) -> None:
    async with recorded_charger(proxy.url(""), "cp-1") as charger:
        await backend.connected.wait()
        assert backend.charger is not None
        ws = backend.charger._connection
        # An action of no OCPP version, and a vendor DataTransfer: the charger answers them.
        await ws.send(json.dumps([2, "vendor-1", "AcmeFlashLights", {"times": 3}]))
        await ws.send(json.dumps([2, "vendor-2", "DataTransfer",
                                  {"vendorId": "com.acme", "messageId": "led", "data": "on"}]))
        await eventually(lambda: _noop(), lambda _: len(_answers(backend.frames, "in")) >= 2)
        answers = {json.loads(r)[1]: json.loads(r) for r in _answers(backend.frames, "in")}
        # The ocpp library's charger answers a CALLERROR for both: relayed under the backend's
        # own ids, untouched otherwise.
        assert answers["vendor-1"][0] == 4 and answers["vendor-2"][0] == 4
        got = charger.received_calls()
        assert [c[2:] for c in got] == [["AcmeFlashLights", {"times": 3}], [
            "DataTransfer", {"vendorId": "com.acme", "messageId": "led", "data": "on"}]]


async def test_backend_down_strom_answers_and_replays_in_order(
        proxy: Ocpp, backend: Backend) -> None:
    async with recorded_charger(proxy.url(""), "cp-1") as charger:
        await backend.connected.wait()
        await charger.call(call.Authorize(id_tag=OWNER_TAG))  # the backend accepts it
        port = backend.port
        await backend.stop()
        before = len(backend.frames)
        conn = proxy.central.connection("cp-1")
        await eventually(lambda: _noop(), lambda _: not conn.upstream.connected)  # type: ignore[union-attr]

        # The charger keeps working with strom alone.
        assert (await charger.call(call.Heartbeat())).current_time
        auth = await charger.call(call.Authorize(id_tag=OWNER_TAG))
        assert auth.id_tag_info["status"] == "Accepted"  # the backend had accepted it
        stranger = await charger.call(call.Authorize(id_tag="STRANGER"))
        assert stranger.id_tag_info["status"] == "Invalid"
        await charger._start(1, OWNER_TAG)
        strom_id = charger.transactions[1]
        await charger.meter(1, 800, 3000)
        await charger._stop(strom_id)
        row = await proxy.transactions.get(strom_id)
        assert row is not None and row.meter_stop_wh == 800

        # The backend comes back: the transaction's messages arrive in order, under its ids.
        await backend.start(port)
        await backend.connected.wait()
        await eventually(lambda: _noop(), lambda _: len(backend.received("StatusNotification"))
                         >= 3 and backend.received("StopTransaction"))
        replayed = [c for way, raw in backend.frames[before:] if way == "in"
                    for c in [json.loads(raw)] if c[0] == 2]
        assert [c[2] for c in replayed] == [
            "StatusNotification", "StartTransaction", "StatusNotification", "MeterValues",
            "StopTransaction", "StatusNotification"]
        assert [c[3].get("status") for c in replayed if c[2] == "StatusNotification"] == [
            "Preparing", "Charging", "Available"]
        start_answer = next(json.loads(raw) for way, raw in backend.frames
                            if way == "out" and json.loads(raw)[1] == replayed[1][1])
        backend_id = start_answer[2]["transactionId"]
        assert backend_id != strom_id
        assert replayed[3][3]["transactionId"] == backend_id
        assert replayed[4][3]["transactionId"] == backend_id
        assert replayed[4][3]["meterStop"] == 800
        # Heartbeats and Authorize answered by strom meanwhile are not replayed.
        assert not [c for c in replayed if c[2] in ("Heartbeat", "Authorize")]
        # The charger goes on through the backend.
        assert (await charger.call(call.Heartbeat())).current_time
        assert backend.received("Heartbeat")


async def test_the_queue_outlives_a_reconnecting_charger(proxy: Ocpp, backend: Backend) -> None:
    async with recorded_charger(proxy.url(""), "cp-1") as charger:
        await backend.connected.wait()
        port = backend.port
        await backend.stop()
        conn = proxy.central.connection("cp-1")
        await eventually(lambda: _noop(), lambda _: not conn.upstream.connected)  # type: ignore[union-attr]
        before = len(backend.frames)
        await charger._start(1, "OFFLINE-TAG")
    # The charger drops its socket and comes back while the backend is still away.
    async with recorded_charger(proxy.url(""), "cp-1") as again:
        await again.call(call.Heartbeat())
        await backend.start(port)
        await eventually(lambda: _noop(), lambda _: backend.received("StartTransaction"))
        await eventually(lambda: _noop(), lambda _: len(backend.received()) >= 3)
        replayed = [json.loads(raw)[2] for way, raw in backend.frames[before:]
                    if way == "in" and json.loads(raw)[0] == 2]
        assert replayed[:3] == ["StatusNotification", "StartTransaction", "StatusNotification"]
        assert replayed.count("StartTransaction") == 1


async def test_a_stalling_backend_does_not_stall_the_charger(
        proxy: Ocpp, backend: Backend) -> None:
    async with recorded_charger(proxy.url(""), "cp-1") as charger:
        await backend.connected.wait()
        assert backend.charger is not None

        async def never(**_: object) -> None:
            await asyncio.sleep(3600)

        backend.charger.route_map["MeterValues"]["_on_action"] = never
        await charger._start(1, OWNER_TAG)
        started = asyncio.get_running_loop().time()
        await charger.call(call.MeterValues(connector_id=1, meter_value=[{
            "timestamp": iso(), "sampled_value": [{"value": "10", "unit": "Wh",
                                                   "measurand": "Energy.Active.Import.Register"}]
        }], transaction_id=charger.transactions[1]))
        assert asyncio.get_running_loop().time() - started < 3.0  # strom answered in time
        # …and strom's own calls are answered meanwhile (its receive loop never waits).
        result = await proxy.central.control.trigger("cp-1", "Heartbeat")  # type: ignore[arg-type]
        assert result.outcome == "accepted"


async def _noop() -> None:
    return None

