"""A map of charge points drawn on the server from slippy-map tiles, without any script.

Only when an operator configures a tile URL (`{z}/{x}/{y}` template) does the index page show
a map; by default strom makes the browser fetch nothing from anyone else. The map is a fixed
grid of tiles (4 × 2 at 256 px) around the chargers' bounding box, positioned in percent so it
scales with the page; each charger is a link on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

TILE = 256
COLS, ROWS = 4, 2
WIDTH, HEIGHT = COLS * TILE, ROWS * TILE
PADDING = 72  # px kept free around the outermost pins: a pin stays whole on a phone too
MAX_ZOOM = 16
MAX_LAT = 85.0511  # Web Mercator's limit


@dataclass(frozen=True, slots=True)
class MapPoint:
    cp_id: str
    name: str
    status: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Placed:
    """Something on the map at `left`/`top` percent of its box (tiles also span a size)."""

    left: float
    top: float


@dataclass(frozen=True, slots=True)
class Tile(Placed):
    url: str
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Pin(Placed):
    point: MapPoint


@dataclass(frozen=True, slots=True)
class TileMap:
    zoom: int
    tiles: list[Tile]
    pins: list[Pin]


def _world_px(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    scale = TILE * 2**zoom
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    x = (lon + 180.0) / 360.0 * scale
    rad = math.radians(lat)
    y = (1.0 - math.log(math.tan(rad) + 1.0 / math.cos(rad)) / math.pi) / 2.0 * scale
    return x, y


def _fitting_zoom(points: list[MapPoint]) -> int:
    for zoom in range(MAX_ZOOM, -1, -1):
        xs, ys = zip(*(_world_px(p.lat, p.lon, zoom) for p in points), strict=True)
        if max(xs) - min(xs) <= WIDTH - 2 * PADDING and max(ys) - min(ys) <= HEIGHT - 2 * PADDING:
            return zoom
    return 0


def tile_url(template: str, zoom: int, x: int, y: int) -> str:
    # str.format would trip over other braces an operator's URL may carry.
    return (template.replace("{z}", str(zoom)).replace("{x}", str(x)).replace("{y}", str(y))
            .replace("{s}", "a").replace("{r}", ""))


def tile_origin(template: str) -> str:
    """The origin tiles come from, for the page's Content-Security-Policy (`{s}` → `*`)."""
    parts = urlsplit(template.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}"


def tile_map(points: list[MapPoint], template: str) -> TileMap | None:
    """The tiles and pins showing `points`, or None without points or a tile URL."""
    if not points or not template:
        return None
    zoom = _fitting_zoom(points)
    pixels = [_world_px(p.lat, p.lon, zoom) for p in points]
    xs, ys = [x for x, _ in pixels], [y for _, y in pixels]
    left = (min(xs) + max(xs)) / 2 - WIDTH / 2
    top = (min(ys) + max(ys)) / 2 - HEIGHT / 2
    count = 2**zoom
    tiles = [
        Tile(left=(tx * TILE - left) / WIDTH * 100, top=(ty * TILE - top) / HEIGHT * 100,
             url=tile_url(template, zoom, tx % count, ty),
             width=TILE / WIDTH * 100, height=TILE / HEIGHT * 100)
        for ty in range(math.floor(top / TILE), math.ceil((top + HEIGHT) / TILE))
        if 0 <= ty < count
        for tx in range(math.floor(left / TILE), math.ceil((left + WIDTH) / TILE))
    ]
    pins = [Pin(left=(x - left) / WIDTH * 100, top=(y - top) / HEIGHT * 100, point=p)
            for p, (x, y) in zip(points, pixels, strict=True)]
    return TileMap(zoom, tiles, pins)
