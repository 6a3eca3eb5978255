"""A paid session with an OCPP 2.0.1 charger, end to end through the public interfaces: LNURL
pay → RequestStartTransaction → TransactionEvent Started → Updated meter values → budget stop
(RequestStopTransaction) → Ended → refund. The charger is the ocpp library's v201 ChargePoint;
a 1.6 charger is paid and stopped beside it on the same strom."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import lnurl
import pytest
from ocpp.v201 import ChargePoint, call
from websockets.asyncio.client import connect

from strom.app import StromApp
from strom.lnurl.links import pay_links
from tests.api.charger import running_charger
from tests.conftest import free_settings
from tests.money.conftest import CP, World, running_world
from tests.ocpp.charger201 import Charger201, ChargingCharger201, running_charger201
from tests.polling import eventually

PRICE_MSAT_PER_KWH = 30_000_000  # 30 msat per Wh: 1,000 sat buy 33.3 Wh
PREPAID_MSAT = 1_000_000
CP16 = "cp-16"


@pytest.fixture
async def strom(data_dir: Path) -> AsyncIterator[StromApp]:
    settings = free_settings(tariff={"price_msat_per_kwh": PRICE_MSAT_PER_KWH},
                             sessions={"stop_timeout": 5.0})
    async with StromApp(settings, data_dir) as app:
        await app.services.charge_points.add(CP, name="Twenty", lat=50.1, lon=8.7,
                                             num_connectors=2)
        await app.services.charge_points.add(CP16, name="Sixteen", lat=50.1, lon=8.7,
                                             num_connectors=1)
        yield app


async def test_budget_stop_and_refund_with_a_2_0_1_charger(strom: StromApp) -> None:
    url = strom.services.central_system.url
    async with running_charger201(url, CP, subprotocols=("ocpp2.0.1", "ocpp1.6"),
                                  charger_class=ChargingCharger201) as charger, \
            httpx.AsyncClient(base_url=strom.http_url, timeout=30) as http:
        world = World(strom, None, http)  # type: ignore[arg-type]
        cp = await strom.services.charge_points.get(CP)
        assert cp is not None and cp.ocpp_protocol == "ocpp2.0.1"
        session = await world.pay_to_charge(PREPAID_MSAT)
        done = await world.session_until(session["url"], lambda s: s["state"] in (
            "stopped", "settled"))
        assert done["stop_reason"] == "budget used up", done
        stops = [args for action, args in charger.asked if action == "RequestStopTransaction"]
        assert stops, "strom never told the charger to stop"
        ended = charger.ended[0]
        # The test charger may report one more step in an Updated event after its Ended one
        # (its metering task races the stop): strom bills it after the end, in its own time.
        done = await world.session_until(session["url"], lambda s: s["state"] in (
            "stopped", "settled") and s["energy_wh"] == pytest.approx(ended.energy_wh, abs=0.01))
        assert stops[0]["transaction_id"] == ended.name
        # Money against the energy the charger reported: consumed = its energy × the price.
        assert done["energy_wh"] == pytest.approx(ended.energy_wh, abs=0.01)
        assert done["consumed_msat"] == pytest.approx(
            min(PREPAID_MSAT, ended.energy_wh * PRICE_MSAT_PER_KWH / 1000), abs=1)
        assert done["paid_msat"] == done["consumed_msat"] + done["refundable_msat"]
        refundable = done["refundable_msat"]
        result, _ = await world.withdraw_all(done["lnurlw"])
        assert result.status == "OK"
        refunded = await world.session(session["url"])
        assert refunded["state"] == "refunded"
        assert refunded["refunded_msat"] == refundable == PREPAID_MSAT - done["consumed_msat"]
        await world.ledger_ok()


class LateCharger201(Charger201):
    """Accepts RequestStartTransaction but sends its Started event only when `go` is set, then
    reports `late_wh` delivered (an Updated event) before it ends."""

    late_wh = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.go = asyncio.Event()
        self.metered = asyncio.Event()

    async def _start(self, evse: int, id_tag: str, remote_start_id: int) -> None:
        await self.go.wait()
        await super()._start(evse, id_tag, remote_start_id)
        await self.meter(evse, self.late_wh)
        self.metered.set()

    async def _stop(self, evse: int, reason: str = "Remote") -> None:
        await self.metered.wait()  # its reading goes out before its end, as it was sampled
        await super()._stop(evse, reason)


async def test_a_stop_during_starting_holds_until_the_late_started_event(
        strom: StromApp) -> None:
    """As over 1.6: the driver stops before the Started event; nothing is offered until the
    charger answers, then RequestStopTransaction at once and paid − its energy, once."""
    url = strom.services.central_system.url
    async with running_charger201(url, CP, charger_class=LateCharger201) as charger, \
            httpx.AsyncClient(base_url=strom.http_url, timeout=30) as http:
        assert isinstance(charger, LateCharger201)
        world = World(strom, None, http)  # type: ignore[arg-type]
        session = await world.pay_to_charge(PREPAID_MSAT)
        await eventually(lambda: _asked(charger, "RequestStartTransaction"), lambda n: n == 1)
        refused = await lnurl.handle(session["lnurlw"])
        assert isinstance(refused, lnurl.LnurlErrorResponse), refused
        assert "your stop is being applied" in refused.reason
        held = await world.session(session["url"])
        assert (held["state"], held["stop_requested"]) == ("starting", True)
        charger.go.set()  # the Started event comes late
        await eventually(lambda: _asked(charger, "RequestStopTransaction"), lambda n: n >= 1)
        done = await world.session_until(session["url"], lambda s: s["state"] == "stopped"
                                         and s["energy_wh"] > 0)
        consumed = round(LateCharger201.late_wh * PRICE_MSAT_PER_KWH / 1000)
        assert done["energy_wh"] == pytest.approx(LateCharger201.late_wh)
        assert done["consumed_msat"] == pytest.approx(consumed, abs=1)
        result, _ = await world.withdraw_all(done["lnurlw"])
        assert result.status == "OK"
        refunded = await world.session(session["url"])
        assert refunded["state"] == "refunded"
        assert refunded["refunded_msat"] == PREPAID_MSAT - done["consumed_msat"]
        again = await lnurl.handle(done["lnurlw"])
        assert isinstance(again, lnurl.LnurlErrorResponse) and "already paid" in again.reason
        await world.ledger_ok()


async def _asked(charger: Charger201, action: str) -> int:
    return sum(1 for name, _ in charger.asked if name == action)


async def test_2_0_1_and_1_6_chargers_side_by_side_each_paid_and_stopped(
        strom: StromApp) -> None:
    url = strom.services.central_system.url
    async with running_charger201(url, CP, charger_class=ChargingCharger201) as charger201, \
            running_charger(url, CP16, connectors=1) as charger16, \
            httpx.AsyncClient(base_url=strom.http_url, timeout=30) as http:
        world = World(strom, None, http)  # type: ignore[arg-type]
        assert (await strom.services.charge_points.get(CP16)).ocpp_protocol == "ocpp1.6"
        sessions = [await world.pay_to_charge(50_000_000),
                    await world.pay_to_charge(50_000_000, target=CP16)]
        for session in sessions:
            await world.session_until(session["url"], lambda s: s["state"] == "charging")
        await charger16.meter(1, 10.0, 1000.0)
        await world.session_until(sessions[1]["url"], lambda s: s["energy_wh"] >= 10.0)
        await world.session_until(sessions[0]["url"], lambda s: s["energy_wh"] > 0)
        for session in sessions:
            done, _ = await world.withdraw_all(session["lnurlw"])  # stops, then refunds
            assert done.status == "OK"
        assert charger201.ended and charger16.remote_stops
        for session in sessions:
            final = await world.session(session["url"])
            assert final["paid_msat"] == (final["consumed_msat"] + final["refundable_msat"]
                                          + final["refunded_msat"])
        await world.ledger_ok()


async def test_the_simulator_speaks_2_0_1_budget_stop_and_refund(data_dir: Path) -> None:
    """`strom simulate --ocpp 2.0.1`'s charger: the same realistic session as over 1.6."""
    async with running_world(data_dir, protocol="ocpp2.0.1") as world:
        cp = await world.app.services.charge_points.get(CP)
        assert cp is not None and cp.ocpp_protocol == "ocpp2.0.1"
        session = await world.pay_to_charge(1_500_000)
        done = await world.session_until(session["url"], lambda s: s["state"] == "stopped")
        assert done["stop_reason"] == "budget used up"
        assert 0 < done["consumed_msat"] <= done["paid_msat"]
        assert done["paid_msat"] == done["consumed_msat"] + done["refundable_msat"]
        await world.charger.wait_for(lambda: world.charger.transaction_id(1) is None)
        result, _ = await world.withdraw_all(done["lnurlw"])
        assert result.status == "OK"
        refunded = await world.session(session["url"])
        assert refunded["refunded_msat"] == done["refundable_msat"]
        await world.ledger_ok()
        # strom configured its sampling through the device model, as it does over 1.6.
        setup = world.app.services.central_system.sampling(CP)
        assert setup is not None and not setup["failed"], setup


async def test_a_rejected_charger_takes_no_payment(strom: StromApp) -> None:
    """A charger the operator rejected is connected but asked nothing: a driver's wallet gets an
    LNURL error instead of an invoice, so nothing is paid for a charger strom cannot start."""
    await strom.services.charge_points.update(CP, boot_status="Rejected")
    url = strom.services.central_system.url
    async with connect(url + CP, subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        charger = ChargePoint(CP, ws)
        task = asyncio.create_task(charger.start())
        try:
            answer = await charger.call(call.BootNotification(
                charging_station={"model": "M", "vendorName": "V"}, reason="PowerUp"))
            assert answer.status == "Rejected"
            assert strom.services.central_system.is_connected(CP)
            pay = await lnurl.get(pay_links(strom.services.settings.public_url, CP).url)
            assert isinstance(pay, lnurl.LnurlErrorResponse), pay
            assert "try again later" in pay.reason
        finally:
            task.cancel()
