"""Passthrough for an OCPP 2.0.1 charger (the ocpp library's v201 ChargePoint) whose backend
is a second 2.0.1 CSMS (`backend201.Backend201`): the backend's RFID session goes through
unchanged, a lightning session between is strom's alone, the conflicts are resolved as the
rules say, and the backend away costs the charger nothing (docs/architecture.md,
"Passthrough")."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ocpp.v201 import call

from strom.passthrough.config import UpstreamConfig
from strom.passthrough.v201 import V201PassthroughConnection
from tests.money.conftest import CP, World
from tests.ocpp.charger201 import Charger201, Running, reading, running_charger201
from tests.passthrough.backend import OWNER_TAG, PASSWORD, Recording
from tests.passthrough.backend201 import Backend201
from tests.passthrough.conftest import shared_strom
from tests.polling import eventually

SAT = 1000
RFID = {"idToken": OWNER_TAG, "type": "ISO14443"}


class RecordedCharger201(Charger201):
    """The 2.0.1 test charger with every raw frame it sent and got in `frames`."""

    def __init__(self, cp_id: str, ws: Any, evses: int) -> None:
        self.frames: list[tuple[str, str]] = []
        super().__init__(cp_id, Recording(ws, self.frames), evses)


@dataclass
class Shared:
    world: World
    charger: RecordedCharger201
    backend: Backend201


@pytest.fixture
async def shared(data_dir: Path, backend201: Backend201) -> AsyncIterator[Shared]:
    """strom (money and all) with a 2.0.1 CP passing through to `backend201`."""
    async with shared_strom(data_dir, UpstreamConfig(
            backend201.url(CP), password=PASSWORD, subprotocol="ocpp2.0.1")) as app:
        assert app.services is not None and app.services.central_system is not None
        async with running_charger201(app.services.central_system.url, CP,
                                      charger_class=RecordedCharger201) as charger, \
                httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
            await backend201.connected.wait()
            await eventually(lambda: app.services.charge_points.get(CP),  # type: ignore[union-attr]
                             lambda cp: cp is not None and cp.status == "Available")
            assert isinstance(charger, RecordedCharger201)
            yield Shared(World(app, None, http), charger, backend201)  # type: ignore[arg-type]


async def _rfid_start(charger: Charger201, evse: int, name: str) -> None:
    """The owner swipes the card: a local start, no remoteStartId."""
    await charger.status(evse, "Occupied")
    charger.running[evse] = Running(name, OWNER_TAG)
    await charger.event(evse, "Started", "Authorized",
                        reading(charger.register_wh, "Transaction.Begin"),
                        chargingState="Charging")


def _exchange(frames: list[tuple[str, str]], about: str, calls: str) -> list[str]:
    """The calls going `calls` ("in"/"out") that mention `about`, and their answers."""
    ids = {json.loads(raw)[1] for way, raw in frames if way == calls and about in raw}
    return [raw for _, raw in frames if json.loads(raw)[1] in ids]


async def _noop() -> None:
    return None


async def test_the_backends_rfid_session_around_a_lightning_session(shared: Shared) -> None:
    world, charger, backend = shared.world, shared.charger, shared.backend
    auth = await charger.call(call.Authorize(id_token=RFID))
    assert auth.id_token_info["status"] == "Accepted"  # the backend's answer
    await _rfid_start(charger, 1, "rfid-tx-1")
    await charger.meter(1, 2000)

    # A driver pays: strom starts on the free EVSE 2 with an idToken of its own.
    session = await world.pay_to_charge(50_000 * SAT)
    url = session["url"]
    await eventually(lambda: _noop(), lambda _: 2 in charger.running)
    lightning = charger.running[2]
    await charger.meter(2, 3000)
    await world.session_until(url, lambda s: s["state"] == "charging" and s["energy_wh"] > 0)

    # The backend cannot start on strom's EVSE, nor stop strom's transaction.
    assert (await backend.remote_start(2)).status == "Rejected"
    stop = await backend.charger.call(call.RequestStopTransaction(transaction_id=lightning.name))
    assert stop.status == "Rejected"
    assert [a for a, _ in charger.asked].count("RequestStartTransaction") == 1  # strom's

    # The driver stops with the withdraw link and takes the rest back.
    done, _ = await world.withdraw_all(session["lnurlw"])
    assert done.status == "OK"
    session = await world.session(url)
    assert session["state"] == "refunded" and session["energy_wh"] == pytest.approx(3000)
    assert session["consumed_msat"] > 0
    assert session["paid_msat"] == session["consumed_msat"] + session["refunded_msat"]
    assert ("RequestStopTransaction", {"transaction_id": lightning.name}) in charger.asked
    await world.ledger_ok()

    # The backend saw none of it: not the transaction, not strom's idToken.
    assert not backend.saw(lightning.name)
    assert not backend.saw(lightning.id_tag)
    events = backend.received("TransactionEvent")
    assert {e[3]["transactionInfo"]["transactionId"] for e in events} == {"rfid-tx-1"}

    # The owner's session goes on and ends with the backend; every frame of it, both ways,
    # is byte for byte what the charger and the backend wrote (the ids are the charger's).
    await charger.meter(1, 2500)
    await charger._stop(1, "Local")
    assert [e[3]["eventType"] for e in backend.received("TransactionEvent")] == [
        "Started", "Updated", "Updated", "Ended"]
    assert _exchange(backend.frames, "rfid-tx-1", "in") == \
        _exchange(charger.frames, "rfid-tx-1", "out")
    assert _exchange(backend.frames, OWNER_TAG, "in") == \
        _exchange(charger.frames, OWNER_TAG, "out")


async def test_backend_down_strom_answers_and_replays_in_seq_no_order(shared: Shared) -> None:
    world, charger, backend = shared.world, shared.charger, shared.backend
    await charger.call(call.Authorize(id_token=RFID))  # the backend accepts: cached
    port = backend.port
    await backend.stop()
    conn = world.app.services.central_system.connection(CP)  # type: ignore[union-attr]
    await eventually(lambda: _noop(), lambda _: not conn.upstream.connected)  # type: ignore[union-attr]
    before = len(backend.frames)

    # The charger keeps working with strom alone: the owner's card, and a paid session.
    assert (await charger.call(call.Heartbeat())).current_time
    auth = await charger.call(call.Authorize(id_token=RFID))
    assert auth.id_token_info["status"] == "Accepted"  # the backend had accepted it
    stranger = await charger.call(call.Authorize(id_token={"idToken": "STRANGER",
                                                           "type": "ISO14443"}))
    assert stranger.id_token_info["status"] == "Invalid"
    await _rfid_start(charger, 1, "offline-tx")
    await charger.meter(1, 800)
    session = await world.pay_to_charge(50_000 * SAT)
    await eventually(lambda: _noop(), lambda _: 2 in charger.running)
    lightning = charger.running[2]
    await charger.meter(1, 900)
    await charger.meter(2, 1000)
    await charger._stop(1, "Local")
    done, _ = await world.withdraw_all(session["lnurlw"])
    assert done.status == "OK"
    assert (await world.session(session["url"]))["state"] == "refunded"

    # The backend comes back: the owner's events arrive in seqNo order, strom's never.
    await backend.start(port)
    await backend.connected.wait()
    await eventually(lambda: _noop(), lambda _: any(
        e[3]["eventType"] == "Ended" for e in backend.received("TransactionEvent")))
    replayed = [c for way, raw in backend.frames[before:] if way == "in"
                for c in [json.loads(raw)] if c[0] == 2 and c[2] == "TransactionEvent"]
    assert [(c[3]["eventType"], c[3]["seqNo"]) for c in replayed] == [
        ("Started", 0), ("Updated", 1), ("Updated", 2), ("Ended", 3)]
    assert {c[3]["transactionInfo"]["transactionId"] for c in replayed} == {"offline-tx"}
    assert not backend.saw(lightning.name)
    await world.ledger_ok()


async def test_conflicts_resolved_as_documented(shared: Shared) -> None:
    world, charger, backend = shared.world, shared.charger, shared.backend
    # strom does not start where the backend's transaction runs.
    await _rfid_start(charger, 1, "rfid-tx-2")
    control = world.app.services.chargers  # type: ignore[union-attr]
    refused = await control.start(CP, 1, "somebody")
    assert refused.outcome == "rejected"
    assert "RequestStartTransaction" not in [a for a, _ in charger.asked]

    # The backend changes a variable strom bills by: strom sets its own again, and says so.
    interval = ("SampledDataCtrlr", "TxUpdatedInterval")
    await eventually(lambda: _noop(), lambda _: charger.variables[interval] != "0")  # boot setup
    ours = charger.variables[interval]
    changed = await backend.charger.call(call.SetVariables(set_variable_data=[{
        "attributeValue": "900", "component": {"name": interval[0]},
        "variable": {"name": interval[1]}}]))
    assert changed.set_variable_result[0]["attribute_status"] == "Accepted"
    await eventually(lambda: _noop(), lambda _: charger.variables[interval] == ours)
    log = world.app.services.event_log  # type: ignore[union-attr]
    entries = await eventually(lambda: log.recent(CP), lambda rows: any(
        r["kind"] == "passthrough_conflict" for r in rows))
    conflict = next(r["payload"] for r in entries if r["kind"] == "passthrough_conflict")
    assert conflict == {"backend": "SetVariables", "resolution": "re-applied",
                        "variables": {"SampledDataCtrlr.TxUpdatedInterval": "900"}}


async def test_a_2_0_1_charger_with_a_1_6_upstream_is_served_without_it(
        shared: Shared, caplog: pytest.LogCaptureFixture) -> None:
    app = shared.world.app
    assert app.services is not None and app.services.central_system is not None
    assert isinstance(app.services.central_system.connection(CP), V201PassthroughConnection)
    await app.services.charge_points.update(CP, upstream=UpstreamConfig(
        shared.backend.url(CP), password=PASSWORD).to_json())  # ocpp1.6: no translation
    async with running_charger201(app.services.central_system.url, CP) as again:
        assert (await again.call(call.Heartbeat())).current_time
        conn = app.services.central_system.connection(CP)
        assert not isinstance(conn, V201PassthroughConnection)
    assert "its upstream speaks ocpp1.6; serving it without its backend" in caplog.text
