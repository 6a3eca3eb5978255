"""The charge-point simulator against a minimal central system built on the ocpp library.

Everything goes over real websockets on 127.0.0.1; the central system below is the ocpp
library's own `ChargePoint` (server side), recording each call in arrival order.
"""

from __future__ import annotations

import asyncio
import base64
import random
import socket
from datetime import UTC, datetime

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from strom.simulator import Fleet, SimEvent, SimulatedChargePoint, fleet_ids
from strom.simulator.battery import Vehicle, random_vehicle
from strom.timeutil import parse_iso
from tests.unit.simulator_support import (
    FAST,
    CentralSystem,
    energy,
    start_charging,
    statuses_of,
)


async def test_boot_statuses_and_heartbeat(cs: CentralSystem) -> None:
    cs.interval = 1
    async with SimulatedChargePoint("cp-1", cs.url, connectors=2, vendor="ACME",
                                    model="Wallbox 9", **FAST) as sim:
        await sim.wait_for(lambda: sim.booted)
        boot = cs.of("BootNotification")[0]
        assert (boot["charge_point_vendor"], boot["charge_point_model"]) == ("ACME", "Wallbox 9")
        await cs.until(lambda: len(cs.of("StatusNotification")) == 3)
        statuses = [(s["connector_id"], s["status"]) for s in cs.of("StatusNotification")]
        assert statuses == [(0, "Available"), (1, "Available"), (2, "Available")]
        assert cs.subprotocols == ["ocpp1.6"]
        assert "Authorization" not in cs.requests[0].headers
        # The interval from the BootNotification answer (1 s) drives the heartbeat.
        await asyncio.sleep(2.5)
        assert 1 <= len(cs.of("Heartbeat")) <= 3
        assert sim.config.get(["HeartbeatInterval"])[0][0]["value"] == "1"


async def test_remote_start_meter_values_and_remote_stop(
        cs: CentralSystem, sim: SimulatedChargePoint) -> None:
    tx_id = await start_charging(cs, sim, connector=2, id_tag="TAG-42")
    start = cs.of("StartTransaction")[0]
    assert (start["connector_id"], start["id_tag"]) == (2, "TAG-42")
    assert isinstance(start["meter_start"], int)
    await cs.until(lambda: len(cs.of("MeterValues")) >= 8)
    stop_answer = await cs.call("cp-1", call.RemoteStopTransaction(transaction_id=tx_id))
    assert stop_answer.status == "Accepted"
    await cs.until(lambda: statuses_of(cs, 2)[-1] == "Available")

    samples = cs.of("MeterValues")
    assert all(s["transaction_id"] == tx_id and s["connector_id"] == 2 for s in samples)
    energies = [energy(s) for s in samples]
    assert energies[0] >= start["meter_start"]
    assert all(b >= a for a, b in zip(energies, energies[1:], strict=False)), energies
    assert energies[-1] > energies[0]
    powers = [energy(s, "Power.Active.Import") for s in samples]
    assert all(0 < p <= 11_000 for p in powers), powers
    socs = [energy(s, "SoC") for s in samples]
    assert all(0 <= a <= b <= 100 for a, b in zip(socs, socs[1:], strict=False)), socs
    values = samples[0]["meter_value"][0]["sampled_value"]
    assert {(v["measurand"], v["unit"]) for v in values} == {
        ("Energy.Active.Import.Register", "Wh"), ("Power.Active.Import", "W"), ("SoC", "Percent")}
    assert {v["context"] for v in values} == {"Sample.Periodic"}
    # No more energy than the charger's limit allows in the (sped-up) time that passed.
    seconds = (parse_iso(samples[-1]["meter_value"][0]["timestamp"])
               - parse_iso(start["timestamp"])).total_seconds()
    assert energies[-1] - start["meter_start"] <= 11_000 * seconds * 60 / 3600 * 1.1

    stop = cs.of("StopTransaction")[0]
    assert (stop["transaction_id"], stop["reason"], stop["id_tag"]) == (tx_id, "Remote", "TAG-42")
    assert stop["meter_stop"] >= energies[-1]
    end = stop["transaction_data"][0]["sampled_value"][0]
    assert (end["context"], float(end["value"])) == ("Transaction.End", stop["meter_stop"])
    assert abs(stop["meter_stop"] - start["meter_start"] - sim.energy_wh(2)) < 1.01
    assert statuses_of(cs, 2) == ["Available", "Preparing", "Charging", "Finishing", "Available"]
    # Causal order on the wire: start before samples, samples before the stop.
    order = [a for a in cs.actions() if a in ("StartTransaction", "MeterValues",
                                              "StopTransaction")]
    assert order == ["StartTransaction"] + ["MeterValues"] * len(samples) + ["StopTransaction"]


async def test_remote_start_and_stop_are_rejected_when_they_cannot_apply(
        cs: CentralSystem, sim: SimulatedChargePoint) -> None:
    await start_charging(cs, sim, connector=1)
    busy = await cs.call("cp-1", call.RemoteStartTransaction(id_tag="T2", connector_id=1))
    unknown = await cs.call("cp-1", call.RemoteStartTransaction(id_tag="T2", connector_id=9))
    no_tx = await cs.call("cp-1", call.RemoteStopTransaction(transaction_id=999_999))
    assert (busy.status, unknown.status, no_tx.status) == ("Rejected", "Rejected", "Rejected")
    # Without a connector the first free one is used.
    anywhere = await cs.call("cp-1", call.RemoteStartTransaction(id_tag="T3"))
    assert anywhere.status == "Accepted"
    await cs.until(lambda: len(cs.of("StartTransaction")) == 2)
    assert cs.of("StartTransaction")[1]["connector_id"] == 2
    full = await cs.call("cp-1", call.RemoteStartTransaction(id_tag="T4"))
    assert full.status == "Rejected"


async def test_invalid_id_tag_stops_with_deauthorized(
        cs: CentralSystem, sim: SimulatedChargePoint) -> None:
    cs.id_tag_status = "Invalid"
    await cs.call("cp-1", call.RemoteStartTransaction(id_tag="BAD", connector_id=1))
    await cs.until(lambda: len(cs.of("StopTransaction")) == 1)
    stop = cs.of("StopTransaction")[0]
    assert stop["reason"] == "DeAuthorized"
    assert stop["transaction_id"] == cs.next_tx


async def test_authorize_first_when_configured(
        cs: CentralSystem, sim: SimulatedChargePoint) -> None:
    changed = await cs.call("cp-1", call.ChangeConfiguration(key="AuthorizeRemoteTxRequests",
                                                             value="true"))
    assert changed.status == "Accepted"
    cs.id_tag_status = "Blocked"
    assert (await cs.call("cp-1", call.RemoteStartTransaction(id_tag="B", connector_id=1))
            ).status == "Accepted"
    await sim.wait_for(lambda: sim.connector_status(1) == "Available" and cs.of("Authorize") != [])
    assert cs.of("StartTransaction") == []
    cs.id_tag_status = "Accepted"
    await start_charging(cs, sim, connector=1, id_tag="OK")
    assert [a["id_tag"] for a in cs.of("Authorize")] == ["B", "OK"]


async def test_offline_queue_delivers_everything_in_order(
        cs: CentralSystem, sim: SimulatedChargePoint) -> None:
    tx_id = await start_charging(cs, sim)
    await cs.until(lambda: len(cs.of("MeterValues")) >= 3)
    before = len(cs.log)
    await sim.drop(offline_for=1.0)
    offline_since = datetime.now(UTC)
    await asyncio.sleep(0.5)
    assert not sim.connected and sim.outbox.pending >= 5
    energy_offline = sim.energy_wh(1)
    # The driver leaves while the charger is offline: the stop is queued behind the samples.
    await asyncio.sleep(0.2)
    assert sim.unplug(1)
    assert sim.energy_wh(1) > energy_offline
    await sim.wait_for(lambda: sim.booted, seconds=5)
    await cs.until(lambda: len(cs.of("StopTransaction")) == 1)

    after = [a for _, a, _ in cs.log[before:]]
    assert after[after.index("closed") + 1] == "BootNotification"
    received = [(s["meter_value"][0]["timestamp"], energy(s)) for s in cs.of("MeterValues")]
    # At least once: the sample in flight when the line died may come again, nothing else.
    samples = sorted(set(received))
    assert len(received) - len(samples) <= 1
    assert [r for n, r in enumerate(received) if r not in received[:n]] == samples
    stamps = [parse_iso(t) for t, _ in samples]
    energies = [e for _, e in samples]
    assert all(b >= a for a, b in zip(energies, energies[1:], strict=False)), samples
    # Nothing lost: no gap in the samples across the outage.
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    assert 0 < min(gaps) and max(gaps) < 0.5, gaps
    assert sum(offline_since < s for s in stamps) >= 10
    stop = cs.of("StopTransaction")[0]
    assert (stop["transaction_id"], stop["reason"]) == (tx_id, "EVDisconnected")
    assert stop["meter_stop"] >= energies[-1]
    tx_messages = [a for a in after if a in ("MeterValues", "StopTransaction")]
    assert tx_messages[-1] == "StopTransaction"
    await cs.until(lambda: sim.outbox.pending == 0)


@pytest.mark.parametrize(("kind", "reason"), [("Soft", "SoftReset"), ("Hard", "HardReset")])
async def test_reset_stops_the_transaction_and_reboots(
        cs: CentralSystem, sim: SimulatedChargePoint, kind: str, reason: str) -> None:
    tx_id = await start_charging(cs, sim)
    answer = await cs.call("cp-1", call.Reset(type=kind))
    assert answer.status == "Accepted"
    await cs.until(lambda: len(cs.of("BootNotification")) == 2 and cs.of("StopTransaction"))
    stop = cs.of("StopTransaction")[0]
    assert (stop["transaction_id"], stop["reason"]) == (tx_id, reason)
    actions = cs.actions()
    second_boot = actions.index("BootNotification", 1)
    # A soft reset reports the stop before rebooting; a hard one only after it is back.
    if kind == "Soft":
        assert actions.index("StopTransaction") < second_boot
        assert cs.log[actions.index("closed")][2]["code"] == 1000
    else:
        assert actions.index("StopTransaction") > second_boot
    await sim.wait_for(lambda: sim.booted and sim.connector_status(1) == "Available")


async def test_configuration_keys(cs: CentralSystem, sim: SimulatedChargePoint) -> None:
    everything = await cs.call("cp-1", call.GetConfiguration())
    keys = {k["key"]: k for k in everything.configuration_key}
    assert keys["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True,
                                          "value": "2"}
    assert {"HeartbeatInterval", "MeterValueSampleInterval", "AuthorizeRemoteTxRequests"} <= set(keys)
    some = await cs.call("cp-1", call.GetConfiguration(key=["heartbeatinterval", "NoSuchKey"]))
    assert [k["key"] for k in some.configuration_key] == ["HeartbeatInterval"]
    assert some.unknown_key == ["NoSuchKey"]

    async def change(key: str, value: str) -> str:
        return (await cs.call("cp-1", call.ChangeConfiguration(key=key, value=value))).status

    assert await change("NoSuchKey", "1") == "NotSupported"
    assert await change("NumberOfConnectors", "4") == "Rejected"
    assert await change("HeartbeatInterval", "soon") == "Rejected"
    assert await change("MeterValueSampleInterval", "1") == "Accepted"
    again = await cs.call("cp-1", call.GetConfiguration(key=["MeterValueSampleInterval"]))
    assert again.configuration_key[0]["value"] == "1"



async def test_sampled_data_keys_decide_what_is_metered(
        cs: CentralSystem, sim: SimulatedChargePoint) -> None:
    """strom sets MeterValuesSampledData and StopTxnSampledData at boot; the simulator obeys."""
    async def change(key: str, value: str) -> str:
        return (await cs.call("cp-1", call.ChangeConfiguration(key=key, value=value))).status

    limits = await cs.call("cp-1", call.GetConfiguration(
        key=["MeterValuesSampledDataMaxLength", "StopTxnSampledDataMaxLength"]))
    assert [k["value"] for k in limits.configuration_key] == ["3", "3"]
    assert await change("MeterValuesSampledData", "Voltage") == "Rejected"
    assert await change("MeterValuesSampledData", "Energy.Active.Import.Register") == "Accepted"
    assert await change("StopTxnSampledData", "") == "Accepted"
    tx_id = await start_charging(cs, sim, connector=1)
    await cs.until(lambda: len(cs.of("MeterValues")) >= 2)
    await cs.call("cp-1", call.RemoteStopTransaction(transaction_id=tx_id))
    await cs.until(lambda: cs.of("StopTransaction"))
    for sample in cs.of("MeterValues"):
        assert [v["measurand"] for v in sample["meter_value"][0]["sampled_value"]] == [
            "Energy.Active.Import.Register"]
    assert "transaction_data" not in cs.of("StopTransaction")[0]

async def test_trigger_message_and_other_commands(
        cs: CentralSystem, sim: SimulatedChargePoint) -> None:
    async def trigger(message: str, connector: int | None = None) -> str:
        return (await cs.call("cp-1", call.TriggerMessage(requested_message=message,
                                                          connector_id=connector))).status

    assert await trigger("Heartbeat") == "Accepted"
    assert await trigger("StatusNotification", 2) == "Accepted"
    assert await trigger("MeterValues", 1) == "Accepted"
    assert await trigger("BootNotification") == "Accepted"
    assert await trigger("DiagnosticsStatusNotification") == "NotImplemented"
    assert await trigger("StatusNotification", 7) == "Rejected"
    await cs.until(lambda: cs.of("Heartbeat") and cs.of("MeterValues")
                   and len(cs.of("BootNotification")) == 2 and len(cs.of("StatusNotification")) == 4)
    assert cs.of("StatusNotification")[-1]["connector_id"] == 2
    triggered = cs.of("MeterValues")[0]["meter_value"][0]["sampled_value"][0]
    assert triggered["context"] == "Trigger"
    assert float(triggered["value"]) == sim.meter_wh(1)

    ours = await cs.call("cp-1", call.DataTransfer(vendor_id="strom-sim", data="ping"))
    theirs = await cs.call("cp-1", call.DataTransfer(vendor_id="acme", data="ping"))
    assert (ours.status, ours.data, theirs.status) == ("Accepted", "ping", "UnknownVendorId")
    assert (await cs.call("cp-1", call.ClearCache())).status == "Accepted"
    with pytest.raises(OCPPError) as unsupported:
        await cs.sides["cp-1"].call(call.GetLocalListVersion(), suppress=False)
    assert unsupported.value.code == "NotImplemented"
    assert (await cs.call("cp-1", call.UnlockConnector(connector_id=9))).status == "NotSupported"
    tx_id = await start_charging(cs, sim, connector=2)
    assert (await cs.call("cp-1", call.UnlockConnector(connector_id=2))).status == "Unlocked"
    await cs.until(lambda: len(cs.of("StopTransaction")) == 1)
    assert cs.of("StopTransaction")[0]["reason"] == "UnlockCommand"
    assert cs.of("StopTransaction")[0]["transaction_id"] == tx_id


async def test_change_availability(cs: CentralSystem, sim: SimulatedChargePoint) -> None:
    async def availability(connector: int, kind: str) -> str:
        return (await cs.call("cp-1", call.ChangeAvailability(connector_id=connector,
                                                              type=kind))).status

    assert await availability(1, "Inoperative") == "Accepted"
    await sim.wait_for(lambda: sim.connector_status(1) == "Unavailable")
    refused = await cs.call("cp-1", call.RemoteStartTransaction(id_tag="T", connector_id=1))
    assert refused.status == "Rejected"
    assert await availability(1, "Operative") == "Accepted"
    await sim.wait_for(lambda: sim.connector_status(1) == "Available")
    tx_id = await start_charging(cs, sim, connector=1)
    assert await availability(0, "Inoperative") == "Scheduled"
    await sim.wait_for(lambda: sim.connector_status(2) == "Unavailable")
    assert sim.connector_status(1) == "Charging"
    await cs.call("cp-1", call.RemoteStopTransaction(transaction_id=tx_id))
    await cs.until(lambda: statuses_of(cs, 1)[-1] == "Unavailable")
    assert statuses_of(cs, 0)[-1] == statuses_of(cs, 2)[-1] == "Unavailable"
    assert await availability(5, "Inoperative") == "Rejected"


async def test_full_battery_ends_the_session(cs: CentralSystem) -> None:
    async with SimulatedChargePoint("cp-1", cs.url, **{**FAST, "speed": 600.0},
                                    battery_wh=3_000, start_soc=70.0) as sim:
        await sim.wait_for(lambda: sim.booted)
        await start_charging(cs, sim)
        await cs.until(lambda: statuses_of(cs, 1)[-1] == "Available")
    stop = cs.of("StopTransaction")[0]
    assert stop["reason"] == "EVDisconnected"
    socs = [energy(s, "SoC") for s in cs.of("MeterValues")]
    powers = [energy(s, "Power.Active.Import") for s in cs.of("MeterValues")]
    assert socs[-1] == 100
    assert powers[-1] < max(powers)
    delivered = stop["meter_stop"] - cs.of("StartTransaction")[0]["meter_start"]
    assert 880 <= delivered <= 900  # 30 % of 3 kWh, floored per reading
    assert statuses_of(cs, 1)[-3:] == ["Charging", "SuspendedEV", "Available"]


async def test_plug_in_then_remote_start_then_unplug(
        cs: CentralSystem, sim: SimulatedChargePoint) -> None:
    assert sim.plug_in(1)
    assert not sim.plug_in(1)
    await sim.wait_for(lambda: sim.connector_status(1) == "Preparing")
    tx_id = await start_charging(cs, sim, connector=1)
    await cs.until(lambda: len(cs.of("MeterValues")) >= 2)
    assert sim.unplug(1)
    assert not sim.unplug(1)
    await cs.until(lambda: statuses_of(cs, 1)[-1] == "Available")
    stop = cs.of("StopTransaction")[0]
    assert (stop["transaction_id"], stop["reason"]) == (tx_id, "EVDisconnected")
    assert statuses_of(cs, 1) == ["Available", "Preparing", "Charging", "Available"]


async def test_basic_auth_header_and_refusal(cs: CentralSystem) -> None:
    events: list[SimEvent] = []
    cs.refuse_with = 401
    async with SimulatedChargePoint("cp-7", cs.url, password="s3cret-pass-word!",
                                    on_event=events.append, **FAST) as sim:
        await cs.until(lambda: len(cs.requests) >= 2)
        assert any(e.kind == "refused" and "HTTP 401" in e.message for e in events)
        cs.refuse_with = None
        await sim.wait_for(lambda: sim.booted)
    expected = "Basic " + base64.b64encode(b"cp-7:s3cret-pass-word!").decode()
    assert {r.headers["Authorization"] for r in cs.requests} == {expected}
    assert cs.requests[-1].path == "/ocpp/cp-7"


async def test_keeps_reconnecting_until_the_server_appears() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    events: list[SimEvent] = []
    async with SimulatedChargePoint("cp-1", f"ws://127.0.0.1:{port}/ocpp",
                                    on_event=events.append, **FAST) as sim:
        await sim.wait_for(lambda: sum(e.kind == "unreachable" for e in events) >= 3)
        assert events[0].message.startswith(
            f"cannot reach ws://127.0.0.1:{port}/ocpp/cp-1 — is `strom run` running? retrying in")
        boot_later = CentralSystem(port=port)
        boot_later.boot_answers = ["Pending"]
        boot_later.interval = 1
        async with boot_later:
            await sim.wait_for(lambda: sim.booted, seconds=10)
        assert boot_later.actions()[:2] == ["BootNotification", "BootNotification"]
        assert any(e.kind == "pending" for e in events)


async def test_fleet_boots_every_charger_and_closes_cleanly(cs: CentralSystem) -> None:
    assert fleet_ids("cp", 1) == ["cp"]
    assert fleet_ids("cp", 3) == ["cp-1", "cp-2", "cp-3"]
    async with Fleet("lot", 5, cs.url, stagger=0.01, **FAST) as fleet:
        await cs.until(lambda: fleet.counts().booted == 5)
        assert fleet.counts().connected == 5
        assert sorted({c for c, a, _ in cs.log if a == "BootNotification"}) == fleet_ids("lot", 5)
    await cs.until(lambda: cs.actions().count("closed") == 5)
    assert {p["code"] for p in cs.of("closed")} == {1000}


def test_power_curve_and_energy_balance() -> None:
    car = Vehicle(capacity_wh=50_000, soc=20.0, onboard_w=11_000)
    assert car.power_at(22_000) < 11_000  # still ramping up
    car.charge(60, 22_000)
    assert car.power_at(22_000) == 11_000
    assert car.power_at(7_400) == 7_400
    soc_before, delivered = car.soc, car.charge(8 * 3600, 22_000)
    assert delivered == pytest.approx((car.soc - soc_before) / 100 * 50_000)
    assert car.full and car.power_w == 0
    tapered = Vehicle(capacity_wh=50_000, soc=90.0, onboard_w=11_000, elapsed_s=60)
    assert 0 < tapered.power_at(11_000) < 11_000
    rng = random.Random(1)
    cars = [random_vehicle(rng) for _ in range(50)]
    assert all(40_000 <= c.capacity_wh <= 100_000 and 10 <= c.soc <= 60 for c in cars)
