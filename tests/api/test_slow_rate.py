"""The slow rate end to end: the ocpp library's 1.6 ChargePoint as the charger (issue 21).

A driver who pays with `?rate=slow` locks the cheaper price with the promise of slower
charging: strom sends the charger the session's limit at start (a charger in no site is
balanced on its own), bills at the slow price, and lifts the limit at the end. A normal
payment at the same charger is untouched; an unknown rate gets a LUD-06 error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strom.app import StromApp
from tests.api.charger import running_charger
from tests.api.conftest import add, ocpp_url
from tests.api.flows import eventually, wait_for_session
from tests.api.test_site_power import OldCharger, SmartCharger, shares
from tests.conftest import free_settings
from tests.polling import eventually as polled

SLOW_W = 3680


@pytest.fixture
async def app(data_dir: Path) -> AsyncIterator[StromApp]:
    settings = free_settings(ocpp={"call_timeout": 1.0}, tariff={
        "price_msat_per_kwh": 300_000,
        "slow_rate": {"max_power_w": SLOW_W, "price_msat_per_kwh": 200_000}})
    async with StromApp(settings, data_dir) as running:
        yield running


async def pay(admin: httpx.AsyncClient, cp_id: str, rate: str | None) -> dict[str, Any]:
    """Pay 2000 sat through the LNURL at `rate` as a wallet would; the charging session."""
    offer = (await admin.get(f"/lnurlp/{cp_id}", params={"rate": rate} if rate else {})).json()
    assert offer["tag"] == "payRequest", offer
    # As wallets do: the amount is added to the callback's own query (quote and rate).
    invoice = (await admin.get(f"{offer['callback']}&amount=2000000")).json()
    assert "pr" in invoice, invoice
    paid = await admin.post("/api/v1/dev/pay", json={"bolt11": invoice["pr"]})
    assert paid.status_code == 200, paid.text
    return await wait_for_session(admin, cp_id, "charging")


async def charge_and_stop(admin: httpx.AsyncClient, charger: SmartCharger,
                          session: dict[str, Any], energy_wh: float = 1500.0) -> dict[str, Any]:
    """The charger reports `energy_wh`, then the driver stops: the ended session."""
    await charger.meter(1, energy_wh, 3600.0)
    await polled(lambda: wait_for_session(admin, session["cp_id"], "charging"),
                 lambda found: bool(found["energy_wh"] >= energy_wh), seconds=10)
    stopped = await admin.post(f"/api/v1/sessions/{session['id']}/stop")
    assert stopped.status_code == 200, stopped.text
    return await wait_for_session(admin, session["cp_id"], "stopped", "refunded", "settled")


async def test_the_slow_rate_limits_the_session_and_bills_the_slow_price(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    await add(admin, "cp-s", connectors=1)
    async with running_charger(ocpp_url(app), "cp-s", 1, SmartCharger) as charger:
        assert isinstance(charger, SmartCharger)
        offer = (await admin.get("/lnurlp/cp-s", params={"rate": "slow"})).json()
        assert "Slow rate: charging at most 3.7 kW" in offer["metadata"]
        assert "200 sat per kWh" in offer["metadata"] and "rate=slow" in offer["callback"]
        session = await pay(admin, "cp-s", "slow")
        await eventually(lambda: charger.limit(1) == SLOW_W, within=10)  # sent at start
        assert app.services is not None
        assert app.services.site_power.cap_w("cp-s", 1) == SLOW_W  # holds count with it
        session = await charge_and_stop(admin, charger, session)
        await eventually(lambda: charger.limits(1) == [float(SLOW_W), None], within=10)
        assert session["tariff"]["max_power_w"] == SLOW_W
        # 1.5 kWh at the slow 200 sat/kWh; the rest of the 2000 sat is the driver's.
        assert session["consumed_msat"] == 300_000
        assert session["paid_msat"] - session["consumed_msat"] == 1_700_000
        assert (await admin.get("/api/v1/ledger/check")).json()["ok"] is True


async def test_the_normal_rate_is_untouched_and_names_the_slow_one(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    await add(admin, "cp-n", connectors=1)
    async with running_charger(ocpp_url(app), "cp-n", 1, SmartCharger) as charger:
        assert isinstance(charger, SmartCharger)
        offer = (await admin.get("/lnurlp/cp-n")).json()
        assert "300 sat per kWh" in offer["metadata"]
        assert "Cheaper slow rate: at most 3.7 kW for 200 sat per kWh" in offer["metadata"]
        assert "rate=" not in offer["callback"]
        session = await charge_and_stop(admin, charger, await pay(admin, "cp-n", None))
        assert charger.limits(1) == []  # no site, no slow rate: no profile at all
        assert session["consumed_msat"] == 450_000
        page = (await admin.get("/cp/cp-n")).text
        assert 'id="slow-qr"' in page and "at most 3.7 kW" in page


async def test_a_slow_session_on_a_site_is_bounded_by_its_own_limit(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    assert (await admin.put("/api/v1/sites/home", json={"limit_w": 22_000})).status_code == 200
    for cp_id in ("cp-a", "cp-b"):
        await add(admin, cp_id, connectors=1)
        assert (await admin.put(f"/api/v1/sites/home/chargers/{cp_id}", json={})).is_success
    url = ocpp_url(app)
    async with running_charger(url, "cp-a", 1, SmartCharger) as a, \
            running_charger(url, "cp-b", 1, SmartCharger) as b:
        assert isinstance(a, SmartCharger) and isinstance(b, SmartCharger)
        await pay(admin, "cp-a", "slow")
        await pay(admin, "cp-b", None)
        # The slow session takes its 3.68 kW; what it leaves goes to the other.
        await shares(admin, "cp_id", "watts", expected=[("cp-a", SLOW_W),
                                                        ("cp-b", 22_000 - SLOW_W)])
        assert app.services is not None
        assert app.services.site_power.cap_w("cp-a", 1) == SLOW_W


@pytest.mark.parametrize("rate", ["turbo", "SLOW", "x" * 500])
async def test_an_unknown_rate_gets_a_lud06_error(app: StromApp, admin: httpx.AsyncClient,
                                                   rate: str) -> None:
    await add(admin, "cp-u", connectors=1)
    for path in ("/lnurlp/cp-u", "/lnurlp/cp-u/callback"):
        answer = await admin.get(path, params={"rate": rate, "amount": 2_000_000})
        assert answer.status_code == 200
        assert answer.json()["status"] == "ERROR"
        assert "unknown rate" in answer.json()["reason"] and len(answer.json()["reason"]) < 200


async def test_a_charger_that_refuses_limits_is_offered_no_slow_rate(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    await add(admin, "cp-o", connectors=1)
    async with running_charger(ocpp_url(app), "cp-o", 1, OldCharger) as old:
        assert isinstance(old, SmartCharger)
        assert app.services is not None
        # strom learns it when it first sends a limit (here: a slow session's).
        session = await pay(admin, "cp-o", "slow")
        power = app.services.site_power
        await eventually(lambda: not power.takes_limits("cp-o"), within=10)
        session = await charge_and_stop(admin, old, session)
        assert session["consumed_msat"] == 300_000  # billed as promised: the operator's loss
        answer = (await admin.get("/lnurlp/cp-o", params={"rate": "slow"})).json()
        assert answer["status"] == "ERROR" and "no slow rate" in answer["reason"]
        assert "slow rate" not in (await admin.get("/lnurlp/cp-o")).json()["metadata"]
        assert 'id="slow-qr"' not in (await admin.get("/cp/cp-o")).text
