"""Stops the charger never confirmed, through a real OCPP websocket (issue 17, defects 2, 3).

The charger is the ocpp library's ChargePoint (`field_charger.py`), driven step by step: it
goes offline when the driver stops, answers RemoteStop `Rejected`, starts after the driver
stopped, and shows a stopped session still charging. Each time strom must bill the energy
the charger reports, stop it again, and give the payer at once only what is surely theirs.

The charger's maximum power is scaled (3 MW): the seconds of a test stand for the hour a real
charger stays offline, so the hold strom keeps back covers the 25 kWh it reports on return.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import lnurl
import pytest

from strom.app import StromApp
from tests.conftest import free_settings
from tests.doubles.edges import make_invoice
from tests.e2e.processes import free_port, strom
from tests.money.conftest import CP, World
from tests.money.field_charger import FieldCharger
from tests.polling import eventually

SETTINGS = {"stop_timeout": 1.0, "start_timeout": 4.0, "max_power_w": 3_000_000.0}
PAID = 10_000_000  # 10,000 sat at 300 sat/kWh


@pytest.fixture
async def field(data_dir: Path) -> AsyncIterator[tuple[World, FieldCharger]]:
    async with StromApp(free_settings(sessions=SETTINGS), data_dir) as app:
        assert app.services is not None and app.services.central_system is not None
        await app.services.charge_points.add(CP, name="Field Street", lat=50.1, lon=8.7)
        charger = FieldCharger(CP, app.services.central_system.url)
        await charger.connect()
        async with httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
            yield World(app, None, http), charger  # type: ignore[arg-type]
        await charger.close()


async def _charging(world: World, charger: FieldCharger, register_wh: float) -> tuple[str, int]:
    """Pay, let the charger start when asked and report `register_wh`; (session url, tx)."""
    session = await world.pay_to_charge(PAID)
    await eventually(lambda: _value(len(charger.start_requests)), lambda n: n == 1)
    tx, status = await charger.start(charger.start_requests[0])
    assert status == "Accepted"
    await charger.status("Charging")
    await charger.meter(tx, register_wh, 11_000)
    await world.session_until(session["url"], lambda s: s["energy_wh"] == register_wh)
    return session["url"], tx


async def _value(value: int) -> int:
    return value


async def _offline(world: World) -> None:
    services = world.app.services
    await eventually(lambda: services.charge_points.get(CP), lambda cp: cp.status == "Offline")


async def test_offline_at_stop_holds_the_worst_case_and_bills_25_kwh_on_return(
        field: tuple[World, FieldCharger]) -> None:
    world, charger = field
    url, tx = await _charging(world, charger, 1000)
    await charger.drop()
    await _offline(world)
    # The driver stops: the charger cannot hear it. The refund link answers at once with
    # what is surely the driver's: all but the worst case since the last reading.
    session = await world.session(url)
    request = await lnurl.handle(session["lnurlw"])
    assert isinstance(request, lnurl.LnurlWithdrawResponse), request
    session = await world.session(url)
    assert session["state"] == "stopping_unconfirmed"
    assert session["consumed_msat"] == 300_000 and session["held_msat"] > 7_000_000
    assert int(request.maxWithdrawable) == session["refundable_msat"] == (
        PAID - 300_000 - session["held_msat"])
    first = int(request.maxWithdrawable)
    await lnurl.execute_withdraw(request, make_invoice(first, currency="bcrt"))
    await world.ledger_ok()
    # Back online, still charging: strom asks it to stop again; it reports 25 kWh and stops.
    await charger.connect(status="Charging")
    await eventually(lambda: _value(charger.stop_requests.count(tx)), lambda n: n >= 1)
    await charger.meter(tx, 25_000, 11_000)
    await charger.stop(tx, 25_000)
    await charger.status("Available")
    done = await world.session_until(url, lambda s: s["state"] == "stopped")
    assert done["energy_wh"] == 25_000
    assert done["consumed_msat"] == 7_500_000 and done["held_msat"] == 0
    assert done["refundable_msat"] == PAID - 7_500_000 - first
    assert done["unbilled_msat"] == 0
    request = await lnurl.handle(done["lnurlw"])
    assert isinstance(request, lnurl.LnurlWithdrawResponse), request
    assert int(request.maxWithdrawable) == done["refundable_msat"]
    await world.ledger_ok()


async def test_a_charger_back_without_a_word_is_asked_its_status_and_settles(
        field: tuple[World, FieldCharger]) -> None:
    world, charger = field
    url, _ = await _charging(world, charger, 1000)
    await charger.drop()
    await _offline(world)
    await lnurl.handle((await world.session(url))["lnurlw"])  # the driver stops: unheard
    held = await world.session(url)
    assert held["state"] == "stopping_unconfirmed" and held["held_msat"] > 0
    # Its transaction ended while it was offline and the StopTransaction was lost; it comes
    # back with a BootNotification only. strom asks its connector's status, which says
    # Available: the session settles on the last reading and the hold is released.
    charger.shown = "Available"
    await charger.connect(status=None)
    await eventually(lambda: _value(charger.triggers.count("StatusNotification")),
                     lambda n: n >= 1)
    done = await world.session_until(url, lambda s: s["state"] == "stopped")
    assert done["held_msat"] == 0 and done["energy_wh"] == 1000
    assert done["refundable_msat"] == PAID - 300_000
    await world.ledger_ok()


async def test_remote_stop_rejected_keeps_asking_and_bills_30_kwh(
        field: tuple[World, FieldCharger]) -> None:
    world, charger = field
    url, tx = await _charging(world, charger, 1000)
    charger.stop_answer = "Rejected"
    session = await world.session(url)
    await lnurl.handle(session["lnurlw"])  # the driver stops: RemoteStop is rejected
    session = await world.session(url)
    assert session["state"] == "stopping_unconfirmed"
    assert charger.stop_requests == [tx]
    await charger.meter(tx, 30_000, 11_000)  # it keeps charging
    session = await world.session_until(url, lambda s: s["energy_wh"] == 30_000)
    assert session["consumed_msat"] == 9_000_000 and session["state"] == "stopping_unconfirmed"
    assert session["refundable_msat"] + session["held_msat"] == 1_000_000
    # strom asks again (backoff: 2 s); this time the charger obeys.
    charger.stop_answer = "Accepted"
    await eventually(lambda: _value(len(charger.stop_requests)), lambda n: n >= 2, seconds=10)
    await charger.stop(tx, 30_000)
    done = await world.session_until(url, lambda s: s["state"] == "stopped")
    assert done["consumed_msat"] == 9_000_000 and done["refundable_msat"] == 1_000_000
    await world.ledger_ok()


async def test_a_stop_during_starting_holds_until_the_late_start_then_bills_it(
        field: tuple[World, FieldCharger]) -> None:
    """The charger starts after the driver stopped: nothing is offered before its answer,
    then exactly paid − what it reported, once."""
    world, charger = field
    session = await world.pay_to_charge(PAID)
    url = session["url"]
    await eventually(lambda: _value(len(charger.start_requests)), lambda n: n == 1)
    # The driver stops with the session page's stop & refund link while the RemoteStart is
    # out: the stop is recorded, and no withdraw is offered until the charger has answered.
    refused = await lnurl.handle(session["lnurlw"])
    assert isinstance(refused, lnurl.LnurlErrorResponse), refused
    assert "your stop is being applied" in refused.reason
    held = await world.session(url)
    assert (held["state"], held["stop_requested"]) == ("starting", True)
    assert held["stop_reason"] == "stopped by the driver" and held["refunded_msat"] == 0
    page = await world.http.get(url)
    assert "the charger has not answered the start yet" in page.text
    # The charger starts late; its idTag is no longer valid, but it keeps charging a little.
    tx, status = await charger.start(charger.start_requests[0])
    assert status == "Invalid"
    await eventually(lambda: _value(charger.stop_requests.count(tx)), lambda n: n >= 1)
    assert not (await world.session(url))["stop_requested"]
    await charger.status("Charging")
    await charger.meter(tx, 150, 11_000)
    await charger.stop(tx, 150)
    done = await world.session_until(url, lambda s: s["state"] == "stopped")
    assert done["energy_wh"] == 150 and done["consumed_msat"] == 45_000
    request = await lnurl.handle(done["lnurlw"])
    assert isinstance(request, lnurl.LnurlWithdrawResponse), request
    assert int(request.maxWithdrawable) == PAID - 45_000
    await world.withdraw_all(done["lnurlw"])
    refunded = await world.session_until(url, lambda s: s["state"] == "refunded")
    assert refunded["refunded_msat"] == PAID - 45_000
    again = await lnurl.handle(done["lnurlw"])
    assert isinstance(again, lnurl.LnurlErrorResponse) and "already paid" in again.reason
    await world.ledger_ok()


async def test_a_stop_while_the_remote_start_waits_its_turn_sends_no_start(
        field: tuple[World, FieldCharger]) -> None:
    """OCPP sends one call at a time: the RemoteStart waits behind a TriggerMessage the
    charger takes its time to answer. The driver stops meanwhile: the RemoteStart never goes
    out, and the session fails at once (not at the start timeout), all refundable."""
    world, charger = field
    charger.trigger_gate = asyncio.Event()
    trigger = asyncio.create_task(world.http.post(
        f"/api/v1/commands/{CP}/trigger", json={"message": "Heartbeat"}, headers=world.admin))
    await eventually(lambda: _value(len(charger.triggers)), lambda n: n == 1)
    session = await world.pay_to_charge(PAID)
    url = session["url"]
    await world.session_until(url, lambda s: s["state"] == "starting")
    refused = await lnurl.handle(session["lnurlw"])
    assert isinstance(refused, lnurl.LnurlErrorResponse), refused
    assert "your stop is being applied" in refused.reason
    charger.trigger_gate.set()
    assert (await trigger).status_code == 200
    failed = await world.session_until(url, lambda s: s["state"] == "failed")
    assert "before the start was sent" in failed["failure_reason"]
    assert charger.start_requests == []
    request = await lnurl.handle(failed["lnurlw"])
    assert isinstance(request, lnurl.LnurlWithdrawResponse), request
    assert int(request.maxWithdrawable) == PAID
    await world.withdraw_all(failed["lnurlw"])
    await world.session_until(url, lambda s: s["state"] == "refunded")
    await world.ledger_ok()


async def test_a_stop_held_while_starting_survives_a_restart(data_dir: Path) -> None:
    """strom goes down while a stop waits for the charger's answer; the charger's queued
    StartTransaction after the restart is stopped at once, and the refund follows."""
    ports = {"http": {"port": free_port()}, "ocpp": {"port": free_port()},
             "relay": {"port": free_port()}}
    # A start timeout the restart cannot outlast (its expiry is tests/unit).
    settings = free_settings(sessions={**SETTINGS, "start_timeout": 60.0}, **ports)
    async with StromApp(settings, data_dir) as app:
        assert app.services is not None and app.services.central_system is not None
        await app.services.charge_points.add(CP, name="Field Street", lat=50.1, lon=8.7)
        charger = FieldCharger(CP, app.services.central_system.url)
        await charger.connect()
        async with httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
            session = await World(app, None, http).pay_to_charge(PAID)  # type: ignore[arg-type]
            await eventually(lambda: _value(len(charger.start_requests)), lambda n: n == 1)
            refused = await lnurl.handle(session["lnurlw"])
            assert isinstance(refused, lnurl.LnurlErrorResponse), refused
        await charger.drop()
    async with StromApp(settings, data_dir) as app, \
            httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
        world = World(app, None, http)  # type: ignore[arg-type]
        assert (await world.session(session["url"]))["stop_requested"]
        await charger.connect(status="Preparing")
        tx, status = await charger.start(charger.start_requests[0])
        assert status == "Invalid"
        await eventually(lambda: _value(charger.stop_requests.count(tx)), lambda n: n >= 1)
        await charger.stop(tx, 0)
        done = await world.session_until(session["url"], lambda s: s["state"] == "stopped")
        assert done["consumed_msat"] == 0 and done["refundable_msat"] == PAID
        await world.withdraw_all(done["lnurlw"])
        await world.session_until(session["url"], lambda s: s["state"] == "refunded")
        await world.ledger_ok()
        await charger.close()


async def test_late_start_after_a_full_refund_is_stopped_and_reported_unbilled(
        field: tuple[World, FieldCharger]) -> None:
    world, charger = field
    session = await world.pay_to_charge(PAID)
    url = session["url"]
    await eventually(lambda: _value(len(charger.start_requests)), lambda n: n == 1)
    # The driver stops while starting; the charger stays silent past the start timeout: the
    # session fails and the whole payment is withdrawn.
    assert isinstance(await lnurl.handle(session["lnurlw"]), lnurl.LnurlErrorResponse)
    await world.session_until(url, lambda s: s["state"] == "failed")
    request = await lnurl.handle(session["lnurlw"])
    assert isinstance(request, lnurl.LnurlWithdrawResponse), request
    assert int(request.maxWithdrawable) == PAID
    await lnurl.execute_withdraw(request, make_invoice(PAID, currency="bcrt"))
    await world.session_until(url, lambda s: s["state"] == "refunded")
    tx, _ = await charger.start(charger.start_requests[0])
    await eventually(lambda: _value(charger.stop_requests.count(tx)), lambda n: n >= 1)
    await charger.meter(tx, 20_000, 11_000)
    await charger.stop(tx, 20_000)
    done = await world.session_until(url, lambda s: s["energy_wh"] == 20_000
                                     and s["state"] not in ("stopping_unconfirmed",))
    assert done["consumed_msat"] == 0 and done["refunded_msat"] == PAID
    assert done["unbilled_msat"] == 6_000_000 and done["unbilled_wh"] == 20_000
    check = await world.http.get("/api/v1/ledger/check", headers=world.admin)
    assert check.status_code == 200 and check.json()["ok"], check.text
    assert any("unbilled energy" in f for f in check.json()["findings"])
    # The operator's `strom ledger check` lists it, and still exits 0: the books balance.
    data_dir = world.app.data_dir
    cli = await asyncio.to_thread(strom, "ledger", "check", data_dir=data_dir)
    assert cli.returncode == 0, cli.stderr
    assert "UNBILLED" in cli.stderr and "unbilled energy" in cli.stderr
    assert "ledger OK" in cli.stdout


async def test_charger_still_charging_a_stopped_session_gets_remote_stop_again(
        field: tuple[World, FieldCharger]) -> None:
    world, charger = field
    url, tx = await _charging(world, charger, 1000)
    await charger.drop()
    await _offline(world)
    session = await world.session(url)
    await lnurl.handle(session["lnurlw"])
    # It comes back saying the connector is Available (the transaction ended) but never sends
    # StopTransaction: after stop_timeout the session is settled on its last reading.
    await charger.connect(status="Available")
    await world.session_until(url, lambda s: s["state"] == "stopped")
    asked = len(charger.stop_requests)
    # Then it shows the session's transaction charging again: strom stops it again.
    await charger.status("Charging")
    await eventually(lambda: _value(len(charger.stop_requests)), lambda n: n > asked)
    assert charger.stop_requests[-1] == tx
    assert (await world.session(url))["state"] == "stopping_unconfirmed"
    await charger.meter(tx, 2000, 11_000)
    await charger.stop(tx, 2000)
    done = await world.session_until(url, lambda s: s["state"] == "stopped")
    assert done["energy_wh"] == 2000 and done["consumed_msat"] == 600_000
    await world.ledger_ok()


async def test_an_extra_transaction_is_stopped_until_it_stops_and_its_energy_reported_unbilled(
        field: tuple[World, FieldCharger]) -> None:
    """A charger starts a second, different transaction with a charging session's idTag (a
    replay, a misbehaving charger) and rejects the first RemoteStop of it: strom asks again
    until it stops, the 400 Wh it reports are the operator's unbilled energy (with the
    transaction and charger), and the payer pays only for their own transaction."""
    world, charger = field
    url, tx = await _charging(world, charger, 1000)
    charger.stop_answer = "Rejected"
    extra, _ = await charger.start(charger.start_requests[0], meter_start=5000)
    assert extra != tx
    await eventually(lambda: _value(charger.stop_requests.count(extra)), lambda n: n >= 1)
    charger.stop_answer = "Accepted"
    # Rejected once: asked again (backoff 2 s), then it stops, 400 Wh later.
    await eventually(lambda: _value(charger.stop_requests.count(extra)), lambda n: n >= 2,
                     seconds=10)
    await charger.stop(extra, 5400)
    assert tx not in charger.stop_requests
    session = await world.session(url)
    assert session["state"] == "charging" and session["energy_wh"] == 1000
    # The driver's own transaction ends as usual: paid − its 1000 Wh, nothing of the 400 Wh.
    await lnurl.handle(session["lnurlw"])
    await eventually(lambda: _value(charger.stop_requests.count(tx)), lambda n: n >= 1)
    await charger.stop(tx, 1000)
    done = await world.session_until(url, lambda s: s["state"] == "stopped")
    assert done["consumed_msat"] == 300_000 and done["refundable_msat"] == PAID - 300_000
    assert done["unbilled_msat"] == 0
    request = await lnurl.handle(done["lnurlw"])
    assert isinstance(request, lnurl.LnurlWithdrawResponse), request
    assert int(request.maxWithdrawable) == PAID - 300_000
    check = await world.http.get("/api/v1/ledger/check", headers=world.admin)
    report = check.json()
    assert check.status_code == 200 and report["ok"], check.text
    assert report["extra_transactions"] == [{
        "transaction_id": extra, "cp_id": CP, "connector_id": 1,
        "session_id": done["id"], "open": False, "energy_wh": 400.0}]
    assert report["extra_unbilled_wh"] == 400.0
    assert any(f"transaction {extra} at {CP}" in f and "400 Wh" in f
               for f in report["findings"])
    asked = charger.stop_requests.count(extra)
    await asyncio.sleep(2.5)  # stopped: never asked again
    assert charger.stop_requests.count(extra) == asked
    # The operator's `strom ledger check` names it, and exits 0: no payer's money moved.
    cli = await asyncio.to_thread(strom, "ledger", "check", data_dir=world.app.data_dir)
    assert cli.returncode == 0, cli.stderr
    assert f"UNBILLED transaction {extra} at {CP}" in cli.stderr
    assert "1 extra transaction(s) (not the payers'): 400 Wh delivered, unbilled" in cli.stdout
