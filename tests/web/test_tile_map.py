"""The server-drawn map: zoom, tile grid and pins (pure geometry, no browser)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from strom.web.tile_map import MapPoint, tile_map, tile_origin, tile_url

TEMPLATE = "https://{s}.tiles.example/{z}/{x}/{y}{r}.png?key={KEY}"


def point(lat: float, lon: float, cp_id: str = "cp") -> MapPoint:
    return MapPoint(cp_id, cp_id, "Available", lat, lon)


def test_no_map_without_tiles_or_points() -> None:
    assert tile_map([point(50, 8)], "") is None
    assert tile_map([], TEMPLATE) is None


def test_one_charger_sits_in_the_middle_at_street_level() -> None:
    drawn = tile_map([point(48.137, 11.575)], TEMPLATE)
    assert drawn is not None and drawn.zoom == 16
    pin = drawn.pins[0]
    assert abs(pin.left - 50) < 1e-9 and abs(pin.top - 50) < 1e-9
    # The tile under the pin, by the OpenStreetMap wiki's formula for tile numbers.
    n = 2**16
    x = int((11.575 + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(48.137))) / math.pi) / 2 * n)
    under = [t for t in drawn.tiles if t.left <= 50 < t.left + t.width and t.top <= 50 < t.top + t.height]
    assert [t.url for t in under] == [f"https://a.tiles.example/16/{x}/{y}.png?key={{KEY}}"]


def test_template_fills_zoom_x_y_and_keeps_other_braces() -> None:
    assert tile_url(TEMPLATE, 3, 4, 5) == "https://a.tiles.example/3/4/5.png?key={KEY}"
    assert tile_origin(TEMPLATE) == "https://*.tiles.example"
    assert tile_origin("http://127.0.0.1:8080/{z}/{x}/{y}.png") == "http://127.0.0.1:8080"


coordinates = st.tuples(st.floats(-80, 80), st.floats(-179.9, 179.9))


@settings(max_examples=200, deadline=None)
@given(st.lists(coordinates, min_size=1, max_size=6))
def test_every_pin_is_inside_and_the_tiles_cover_the_box(spots: list[tuple[float, float]]) -> None:
    drawn = tile_map([point(lat, lon, f"cp{i}") for i, (lat, lon) in enumerate(spots)], TEMPLATE)
    assert drawn is not None
    for pin in drawn.pins:
        assert 0 <= pin.left <= 100 and 0 <= pin.top <= 100
    count = 2**drawn.zoom
    for tile in drawn.tiles:
        z, x, y = tile.url.split("/")[3:6]
        assert int(z) == drawn.zoom and 0 <= int(x) < count and 0 <= int(y.split(".")[0]) < count
    # Horizontally the tiles always cover the whole box; vertically, unless the world ends.
    lefts = sorted({round(t.left, 6) for t in drawn.tiles})
    assert lefts[0] <= 0 and lefts[-1] + drawn.tiles[0].width >= 100
    assert all(b - a <= drawn.tiles[0].width + 1e-6 for a, b in zip(lefts, lefts[1:], strict=False))
