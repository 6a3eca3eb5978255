"""The index, charger and sticker pages in headless Chromium, at phone and desktop width."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from strom.keys import ensure_cp_key
from strom.lnurl.codec import lnurl_decode
from strom.lnurl.links import pay_links
from tests.browser.a11y import focus_ring, problems
from tests.browser.tabs import DESKTOP, PHONE, Tabs
from tests.money.conftest import CP, World


async def add_offline_charger(world: World) -> None:
    await world.app.services.charge_points.add("harbour-2", name="Harbour car park",
                                               lat=50.11, lon=8.68, num_connectors=1)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_pages_render_accessible_and_only_from_strom(world: World, tabs: Tabs,
                                                          viewport: dict[str, int]) -> None:
    await add_offline_charger(world)
    tab = await tabs.open(viewport)
    expected = {"/": "Charge points", f"/cp/{CP}": "Money Street",
                f"/cp/{CP}/sticker": "Pay with Lightning"}
    for path, heading in expected.items():
        await tab.goto(path)
        assert heading in await tab.text("h1"), path
        assert await problems(tab.page) == [], path
        assert await tab.overflow_px() <= 0, f"{path} scrolls sideways at {viewport}"
    await tab.goto("/")
    cards = tab.page.locator("#charge-points li")
    assert await cards.count() == 2
    assert "Available" in await cards.filter(has_text="Money Street").inner_text()
    assert "Offline" in await cards.filter(has_text="Harbour car park").inner_text()
    assert "300 sat per kWh" in await cards.first.inner_text()
    assert await tab.page.locator("#map").count() == 0  # no tile server configured: no map
    assert tab.outside() == []
    assert len(tab.requests) >= 9  # pages, style sheet, script: all of it was watched


async def test_charger_qr_decodes_to_its_lnurl(world: World, tabs: Tabs) -> None:
    base = world.app.services.settings.public_url
    links = pay_links(base, CP)
    assert world.app.services.keyring is not None
    ensure_cp_key(world.app.services.keyring.path, CP)  # as `strom cp add` does
    npub = world.app.services.keyring.npub(CP)
    tab = await tabs.open(PHONE)
    await tab.goto(f"/cp/{CP}")
    decoded = await tab.decode_qr(tab.page.locator("#pay-qr svg"))
    assert decoded == links.web
    assert decoded.startswith(f"{base}/cp/{CP}?lightning=LNURL1")
    lightning = parse_qs(urlsplit(decoded).query)["lightning"][0]
    assert lnurl_decode(lightning) == f"{base}/lnurlp/{CP}"
    assert await tab.page.get_attribute("#open-wallet", "href") == f"lightning:{lightning}"
    assert links.address in await tab.text(".ids")
    assert f"Nostr\n{npub}" in await tab.text(".ids")
    await tab.goto(f"/cp/{CP}/sticker")
    assert await tab.decode_qr(tab.page.locator(".sticker-qr svg")) == links.web
    await tab.page.emulate_media(media="print")  # on paper: the QR and how-to, no screen links
    assert not await tab.page.locator(".no-print").is_visible()
    assert await tab.page.locator(".sticker-qr svg").is_visible()
    assert "Scan the code with any Lightning wallet." in await tab.text("ol")
    assert tab.outside() == []


async def test_charger_page_shows_connector_status_live(world: World, tabs: Tabs) -> None:
    tab = await tabs.open(DESKTOP)
    await tab.goto(f"/cp/{CP}")
    await tab.page.evaluate("window.notReloaded = true")
    connector = tab.page.locator('[data-connector="2"]')
    assert await connector.inner_text() == "Available"
    assert "2 of 2 connectors are free" in await tab.text("#availability")
    world.charger.plug_in(2)  # the charger reports Preparing over OCPP
    await tab.page.wait_for_function(
        "() => document.querySelector('[data-connector=\"2\"]').textContent === 'Preparing'")
    assert "status-preparing" in (await connector.get_attribute("class") or "")
    world.charger.unplug(2)
    await tab.page.wait_for_function(
        "() => document.querySelector('[data-connector=\"2\"]').textContent === 'Available'")
    assert await tab.page.evaluate("window.notReloaded === true")
    assert tab.outside() == []


async def test_index_filter_works_from_the_keyboard(world: World, tabs: Tabs) -> None:
    await add_offline_charger(world)
    tab = await tabs.open(PHONE)
    await tab.goto("/")
    await tab.page.keyboard.press("Tab")
    tag, name, ring = await focus_ring(tab.page)
    assert (tag, name) == ("A", "Skip to content") and ring >= 2
    for _ in range(5):  # skip link, brand, then the search field
        if await tab.page.evaluate("document.activeElement.id") == "q":
            break
        await tab.page.keyboard.press("Tab")
    tag, _, ring = await focus_ring(tab.page)
    assert tag == "INPUT" and ring >= 2
    await tab.page.keyboard.type("harbour")
    await tab.page.keyboard.press("Enter")
    await tab.page.wait_for_url("**/?q=harbour*")
    assert await tab.page.locator("#charge-points li").all_inner_texts() == [
        await tab.text("#charge-points li")]
    assert "Harbour car park" in await tab.text("#charge-points")
    assert "1 charge point matches" == await tab.text("#count")
    await tab.goto("/?status=Available")
    assert await tab.page.locator("#charge-points li").count() == 1
    assert "Money Street" in await tab.text("#charge-points")
    assert await tab.page.input_value("#status") == "Available"
    await tab.goto("/?q=nothing+like+this")
    assert "No charge point matches" in await tab.text("main")
    assert tab.outside() == []


async def test_unknown_charger_gets_a_page_with_a_way_back(world: World, tabs: Tabs) -> None:
    tab = await tabs.open(PHONE)
    answer = await tab.page.goto(f"{world.app.http_url}/cp/no-such-charger")
    assert answer is not None and answer.status == 404
    assert await tab.text("h1") == "No such charge point"
    await tab.page.get_by_role("link", name="See all charge points").click()
    await tab.page.wait_for_url(f"{world.app.http_url}/")
    assert await problems(tab.page) == []
