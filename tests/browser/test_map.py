"""The index page's map: absent (and no outside request) by default; with a tile server
configured, tiles come from that server only and each charger is a link on the map."""

from __future__ import annotations

import io

from PIL import Image
from playwright.async_api import Route

from tests.browser.tabs import DESKTOP, PHONE, Tab, Tabs
from tests.money.conftest import CP, World

TILES = "https://tiles.example/{z}/{x}/{y}.png"


def configure_tiles(world: World) -> None:
    http = world.app.services.settings.http
    http.map_tiles_url = TILES
    http.map_attribution = "Map data © OpenStreetMap contributors"


async def serve_tiles(tab: Tab) -> list[str]:
    """Answer tile requests in the browser, as the configured tile server would."""
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 220, 210)).save(buffer, format="PNG")
    served: list[str] = []

    async def tile(route: Route) -> None:
        served.append(route.request.url)
        await route.fulfill(status=200, content_type="image/png", body=buffer.getvalue())

    await tab.page.context.route("https://tiles.example/**", tile)
    return served


async def test_no_map_and_nothing_from_outside_by_default(world: World, tabs: Tabs) -> None:
    tab = await tabs.open(DESKTOP)
    await tab.goto("/")
    assert await tab.page.locator("#map, img").count() == 0
    assert tab.outside() == []


async def test_map_with_configured_tiles_links_each_charger(world: World, tabs: Tabs) -> None:
    await world.app.services.charge_points.add("harbour-2", name="Harbour car park",
                                               lat=50.09, lon=8.66, num_connectors=1)
    configure_tiles(world)
    for viewport in (PHONE, DESKTOP):
        tab = await tabs.open(viewport)
        served = await serve_tiles(tab)
        answer = await tab.page.goto(tab.origin + "/")
        assert answer is not None and "https://tiles.example" in answer.headers[
            "content-security-policy"]
        the_map = tab.page.locator("#map")
        await the_map.wait_for()
        assert "OpenStreetMap" in await tab.text(".map-figure figcaption")
        tiles = tab.page.locator("#map img.tile")
        assert await tiles.count() >= 8
        await tab.page.wait_for_function(  # every tile loaded: the page's CSP lets them in
            "() => [...document.querySelectorAll('#map img')].every(i => i.naturalWidth === 256)")
        assert len(served) == await tiles.count()
        assert all(url.startswith("https://tiles.example/") for url in tab.outside())
        box = await the_map.bounding_box()
        assert box is not None
        pins = tab.page.locator("#map a.pin")
        assert await pins.count() == 2
        for pin in await pins.all():
            spot = await pin.bounding_box()
            assert spot is not None
            assert box["x"] <= spot["x"] and spot["x"] + spot["width"] <= box["x"] + box["width"]
            assert box["y"] <= spot["y"] and spot["y"] + spot["height"] <= box["y"] + box["height"]
        assert await tab.overflow_px() <= 0
    money = tab.page.get_by_role("link", name="Money Street: Available")
    await money.focus()
    await tab.page.keyboard.press("Enter")
    await tab.page.wait_for_url(f"{tab.origin}/cp/{CP}")
