"""The payer's session page in headless Chromium: it follows the session by itself (no reload),
offers stop & refund and top-up as QR codes, ends with a receipt, and reads without JavaScript."""

from __future__ import annotations

from playwright.async_api import Page

from strom.lnurl.codec import lnurl_decode
from strom.web.page_views import sat
from tests.browser.a11y import problems
from tests.browser.tabs import DESKTOP, PHONE, Tabs
from tests.money.conftest import World

SAT = 1000


async def shown(page: Page, section: str) -> bool:
    return await page.locator(f"#{section}").is_visible()


async def test_session_page_updates_itself_until_the_receipt(world: World, tabs: Tabs) -> None:
    session = await world.pay_to_charge(50_000 * SAT)
    token = session["url"].rsplit("/", 1)[1]
    tab = await tabs.open(PHONE)
    await tab.goto(f"/s/{token}")
    page = tab.page
    await page.evaluate("window.notReloaded = true")

    # Charging: energy, cost and time rise while the test only watches the DOM.
    await page.wait_for_function(
        "() => document.getElementById('state').textContent === 'Charging'")
    first = float(await tab.text("#energy"))
    await page.wait_for_function(
        f"() => parseFloat(document.getElementById('energy').textContent) > {first}")
    await page.wait_for_function(
        "() => document.getElementById('consumed').textContent !== '0 sat'")
    await page.wait_for_function(
        "() => document.getElementById('elapsed').textContent !== '–'")
    assert await tab.text("#power") != "–" and await tab.text("#soc") != "–"
    assert await shown(page, "stop-section") and await shown(page, "topup-section")
    assert not await shown(page, "receipt-section")
    assert await tab.text("#stop-title") == "Stop and refund"
    withdraw = await tab.decode_qr(page.locator("#stop-section svg"))
    assert withdraw == f"lightning:{session['lnurlw']}"
    assert lnurl_decode(withdraw.removeprefix("lightning:")).endswith(f"/lnurlw/{token}")
    topup = await tab.decode_qr(page.locator("#topup-section svg"))
    # The top-up code carries only the top-up token (it can pay, not stop or refund).
    assert topup == f"lightning:{session['topup_lnurl']}"
    assert "/topup/" in lnurl_decode(topup.removeprefix("lightning:"))
    assert token not in lnurl_decode(topup.removeprefix("lightning:"))
    assert await page.get_attribute("#topup-link", "href") == topup
    assert await problems(page) == []
    assert await tab.overflow_px() <= 0

    # The driver opens the stop & refund link in a wallet: the charge stops.
    done, _ = await world.withdraw_all(session["lnurlw"])
    assert done.status == "OK"
    await page.wait_for_function(
        "() => document.getElementById('state').textContent === 'Finished and refunded'")
    final = await world.session(session["url"])
    assert await shown(page, "receipt-section")
    assert not await shown(page, "stop-section") and not await shown(page, "topup-section")
    assert await tab.text("#refund-words") == f"{sat(final['refunded_msat'])} refunded to your wallet."
    assert await tab.text("#end-words") == "Charging ended: stopped by the driver."
    assert await tab.text("#refunded") == sat(final["refunded_msat"])
    assert await tab.text("#charged") == sat(final["consumed_msat"])
    assert await tab.text("#energy") == f"{final['energy_wh'] / 1000:.2f}"
    assert final["refunded_msat"] + final["consumed_msat"] == final["paid_msat"]
    assert await page.evaluate("window.notReloaded === true")
    assert await problems(page) == []
    assert tab.outside() == []


async def test_stopped_session_offers_the_refund_then_shows_it(world: World, tabs: Tabs) -> None:
    session = await world.pay_to_charge(1_500 * SAT)  # a small budget: it runs out by itself
    token = session["url"].rsplit("/", 1)[1]
    tab = await tabs.open(DESKTOP)
    await tab.goto(f"/s/{token}")
    page = tab.page
    await page.wait_for_function(
        "() => document.getElementById('state').textContent === 'Stopped'",
                                 timeout=20_000)
    assert await shown(page, "receipt-section") and await shown(page, "stop-section")
    assert await tab.text("#stop-title") == "Get your refund"
    assert await tab.text("#end-words") == "Charging ended: budget used up."
    assert "are waiting for you" in await tab.text("#refund-words")
    assert float(await page.get_attribute("#budget", "value") or 0) > 0
    await world.withdraw_all(session["lnurlw"])
    await page.wait_for_function(
        "() => document.getElementById('stop-section').hidden")
    assert "refunded to your wallet" in await tab.text("#refund-words")
    assert tab.outside() == []


async def test_session_page_reads_without_javascript(world: World, tabs: Tabs) -> None:
    session = await world.pay_to_charge(50_000 * SAT)
    await world.session_until(session["url"], lambda s: s["energy_wh"] > 0)
    token = session["url"].rsplit("/", 1)[1]
    tab = await tabs.open(PHONE, javascript=False)
    await tab.goto(f"/s/{token}")
    assert await tab.text("#state") == "Charging"
    assert float(await tab.text("#energy")) > 0
    assert (await tab.text("#consumed")).endswith(" sat")
    assert await shown(tab.page, "stop-section")
    withdraw = await tab.decode_qr(tab.page.locator("#stop-section svg"))
    assert withdraw == f"lightning:{session['lnurlw']}"
    assert "Reload this page" in await tab.text("main")
    assert not any(url.endswith(f"/s/{token}/events") for url in tab.requests)
    assert await tab.overflow_px() <= 0
