"""Demo mode's first run, the whole loop in headless Chromium with the dev wallet only:
pay from the charger page, watch it charge, then "Withdraw to the dev wallet" on the session
page stops the charge and takes the refund by the LNURL-withdraw path; the receipt shows it
and `strom ledger check` passes."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from strom.web.page_views import sat
from tests.browser.a11y import problems
from tests.browser.tabs import PHONE, Tabs
from tests.money.conftest import CP, World, demo_world  # noqa: F401  (demo mode's strom)


@pytest.fixture
async def demo_tabs(demo_world: World, browser: Browser) -> AsyncIterator[Tabs]:  # noqa: F811
    opened = Tabs(browser, demo_world.app.http_url)
    yield opened
    await opened.close()


async def test_pay_charge_stop_and_withdraw_with_the_dev_wallet(
        demo_world: World, demo_tabs: Tabs) -> None:  # noqa: F811
    world = demo_world
    tab = await demo_tabs.open(PHONE)
    await tab.goto(f"/cp/{CP}")
    page = tab.page
    await page.fill("#demo-sat", "50000")
    await page.get_by_role("button", name="Pay with the dev wallet").click()
    await page.wait_for_url("**/s/*")
    await page.wait_for_function(
        "() => document.getElementById('state').textContent === 'Charging'"
        " && parseFloat(document.getElementById('energy').textContent) > 0", timeout=20_000)
    url = page.url
    assert await problems(page) == []  # the demo form reads like the rest of the page

    await page.get_by_role("button", name="Withdraw to the dev wallet").click()
    await page.wait_for_function(
        "() => document.getElementById('state').textContent === 'Finished and refunded'",
        timeout=20_000)
    assert page.url == url  # back on the session page
    final = await world.session(url)
    assert final["state"] == "refunded" and final["stop_reason"] == "stopped by the driver"
    assert 0 < final["refunded_msat"] < final["paid_msat"] == 50_000_000
    assert final["refunded_msat"] + final["consumed_msat"] == final["paid_msat"]
    assert await tab.text("#refunded") == sat(final["refunded_msat"])
    assert await tab.text("#refund-words") == (
        f"{sat(final['refunded_msat'])} refunded to your wallet.")
    assert not await page.locator("#demo-withdraw").is_visible()
    # The refund was an LNURL-withdraw refund: the link now says it was paid.
    again = await world.http.get(f"/lnurlw/{url.rsplit('/', 1)[1]}")
    assert "already paid" in again.json()["reason"]
    # Pressing the button again pays nothing twice.
    token = url.rsplit("/", 1)[1]
    twice = await world.http.post(f"/demo-withdraw/{token}")
    assert twice.status_code == 409 and "already paid" in twice.text

    ledger = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "strom", "ledger", "check", "--json",
        "--data-dir", str(world.app.data_dir), stdout=asyncio.subprocess.PIPE)
    out, _ = await ledger.communicate()
    assert ledger.returncode == 0 and json.loads(out)["ok"], out
    assert tab.outside() == []


async def test_outside_demo_mode_there_is_no_dev_wallet_refund(world: World) -> None:
    session = await world.pay_to_charge(50_000 * 1000)
    page = await world.http.get(session["url"])
    assert "demo-withdraw" not in page.text
    token = session["url"].rsplit("/", 1)[1]
    answer = await world.http.post(f"/demo-withdraw/{token}")
    assert answer.status_code == 404
    after = await world.session(session["url"])
    assert after["refunded_msat"] == 0 and after["state"] in ("paid", "starting", "charging")
