"""Real chargers' frames from public bug reports, replayed through the real server.

Each fixture in tests/data/field/ is one charger model's session as its owner posted it on
GitHub (the URL is in the fixture): BootNotification, StatusNotification, StartTransaction,
MeterValues and StopTransaction frames in the order the charger sent them. A driver pays over
LNURL, strom asks the charger to start, and the recorded charger answers with those frames.
The session must bill the energy the frames show (worked out by hand from the frames and
written in the fixture as `expected_energy_wh`), and the books must balance.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.field.conftest import PREPAY_MSAT, PRICE_MSAT_PER_KWH
from tests.field.replay import CALLRESULT, Fixture, RecordedCharger, all_fixtures
from tests.money.conftest import World
from tests.polling import eventually

FIXTURES = all_fixtures()


def test_the_corpus_covers_at_least_fifteen_models() -> None:
    models = {(f.vendor.lower(), f.model.lower()) for f in FIXTURES}
    assert len(models) >= 15, sorted(models)
    for fixture in FIXTURES:
        assert fixture.source.startswith("https://github.com/"), fixture.name
        assert fixture.notes, f"{fixture.name}: say what was filled in and why the energy"
        assert len(fixture.model) <= 20, "chargePointModel is CiString20Type"
        fixture.connector_id()  # every fixture starts a transaction


def test_the_corpus_tests_billing_on_at_least_eleven_models() -> None:
    # A ratchet, not the goal: the issue asks for 15 models billing real readings; public posts
    # gave whole sessions for these so far (tests/data/field/README.md lists what is missing).
    billing = {(f.vendor.lower(), f.model.lower()) for f in FIXTURES if f.expected_energy_wh > 0}
    assert len(billing) >= 11, sorted(billing)


@contextlib.asynccontextmanager
async def replayed(world: World, fixture: Fixture) -> AsyncIterator[str]:
    """Pay for a session on the recorded charger and replay its frames; yields the session URL."""
    app = world.app
    assert app.services is not None and app.services.central_system is not None
    cp_id = f"field-{fixture.name}"
    connector = fixture.connector_id()
    await app.services.charge_points.add(cp_id, name=fixture.model, lat=50.1, lon=8.7,
                                         num_connectors=max(connector, 1))
    charger = RecordedCharger(fixture, f"{app.services.central_system.url.rstrip('/')}/{cp_id}")
    await charger.connect()
    try:
        calls = fixture.calls()
        boot = next((c for c in calls if c[2] == "BootNotification"), None)
        if boot is None:  # not in the post: the model's name is in the fixture
            answer = await charger.send_synthetic("BootNotification", {
                "chargePointVendor": fixture.vendor, "chargePointModel": fixture.model})
        else:
            answer = await charger.replay(boot)
        assert answer[0] == CALLRESULT and answer[2]["status"] == "Accepted", answer
        # The connector is free before the driver pays (the posts start mid-way).
        await charger.send_synthetic("StatusNotification", {
            "connectorId": connector, "errorCode": "NoError", "status": "Available"})
        await eventually(lambda: app.services.charge_points.get(cp_id),
                         lambda cp: cp.connector(connector).status == "Available")

        session = await world.pay_to_charge(PREPAY_MSAT, target=cp_id)
        await asyncio.wait_for(charger.remote_start.wait(), timeout=10)
        for frame in calls:
            if frame is not boot:
                answer = await charger.replay(frame)
                assert answer[0] == CALLRESULT, (frame, answer)  # every recorded frame is valid
        assert charger.transaction_id is not None, "strom never answered StartTransaction"
        yield session["url"]
    finally:
        await charger.close()


async def settled_view(world: World, url: str,
                       check: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The session once `check` holds (meter events are asynchronous), or None."""
    with contextlib.suppress(AssertionError):
        return await eventually(lambda: world.session(url), check, seconds=8)
    return None


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
async def test_field_session_bills_the_energy_the_charger_reported(world: World,
                                                                     fixture: Fixture) -> None:
    async with replayed(world, fixture) as url:
        await assert_billed(world, url, fixture, stopped=fixture.has_stop())


async def assert_billed(world: World, url: str, fixture: Fixture, *, stopped: bool) -> None:
    """The session bills the energy the frames show, at the price (and is over when the
    recording stops it); the books balance."""
    expected = fixture.expected_energy_wh
    done = await settled_view(
        world, url, lambda s: abs(s["energy_wh"] - expected) <= fixture.tolerance_wh
        and (not stopped or s["state"] in ("stopped", "settled")))
    if done is None:
        seen = await world.session(url)
        pytest.fail(f"{fixture.vendor} {fixture.model}: session {seen['state']}, billing "
                    f"{seen['energy_wh']} Wh; the frames show {expected} Wh ({fixture.source})")
    price = PRICE_MSAT_PER_KWH / 1000
    assert abs(done["consumed_msat"] - expected * price) <= fixture.tolerance_wh * price + 1
    assert done["paid_msat"] == done["consumed_msat"] + done["refundable_msat"]
    await world.ledger_ok()


SHOWN = [f for f in FIXTURES if f.expected_power_w is not None or f.expected_soc_percent is not None]


@pytest.mark.parametrize("fixture", SHOWN, ids=[f.name for f in SHOWN])
async def test_field_session_shows_the_power_and_soc_the_charger_reported(
        world: World, fixture: Fixture) -> None:
    def shown(s: dict[str, Any]) -> bool:
        power, soc = fixture.expected_power_w, fixture.expected_soc_percent
        return ((power is None or s["power_w"] is not None and abs(s["power_w"] - power) < 0.5)
                and (soc is None or s["soc_percent"] == soc))

    async with replayed(world, fixture) as url:
        if await settled_view(world, url, shown) is None:
            seen = await world.session(url)
            pytest.fail(f"{fixture.vendor} {fixture.model}: session shows {seen['power_w']} W, "
                        f"SoC {seen['soc_percent']}; the last frame shows "
                        f"{fixture.expected_power_w} W, SoC {fixture.expected_soc_percent}")
