"""Price feeds: day-ahead spot prices (aWATTar JSON, generic JSON or CSV) and the BTC/EUR rate.

A source is an http(s) URL or a file path. Every failure is a `FeedError` with a one-line
reason that names the source without its query string (which may carry an API key).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from strom.config import TariffFeedSettings
from strom.outbound import Outbound, OutboundError
from strom.timeutil import iso, parse_iso

MAX_BYTES = 4 * 1024 * 1024
# A spot price beyond this is a broken feed, not a market (EPEX limits are ±4,000–5,000).
MAX_ABS_EUR_PER_MWH = 20_000.0


class FeedError(Exception):
    """A feed could not be read or did not make sense; the message is one line."""


@dataclass(frozen=True, slots=True)
class SpotSlot:
    """One market time unit: the spot price from `start` (inclusive) to `end` (exclusive)."""

    start: datetime
    end: datetime
    eur_per_mwh: float

    def to_json(self) -> list[Any]:
        return [iso(self.start), iso(self.end), self.eur_per_mwh]

    @classmethod
    def from_json(cls, data: list[Any]) -> SpotSlot:
        return cls(parse_iso(data[0]), parse_iso(data[1]), float(data[2]))


def shown_source(source: str) -> str:
    """The source as logs and pages may show it: no user info, no query string."""
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https"):
        return source
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    return urlunsplit((parts.scheme, f"{host}:{port}" if port else host, parts.path, "", ""))


async def read_source(source: str, outbound: Outbound, deadline: float) -> bytes:
    """The bytes at an http(s) URL or a file path (also `file://`), at most `MAX_BYTES`."""
    parts = urlsplit(source)
    if parts.scheme in ("http", "https"):
        return await _read_http(source, outbound, deadline)
    path = Path(parts.path if parts.scheme == "file" else source)
    try:
        data = await asyncio.to_thread(_read_file, path)
    except OSError as exc:
        raise FeedError(f"cannot read {source}: {exc.strerror or exc}") from None
    return data


def _read_file(path: Path) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise FeedError(f"{path} is larger than {MAX_BYTES // 1024 // 1024} MB")
    return data


async def _read_http(url: str, outbound: Outbound, deadline: float) -> bytes:
    shown = shown_source(url)
    try:
        response = await outbound.get(url, headers={"Accept": "application/json, text/csv"},
                                      max_bytes=MAX_BYTES, deadline=deadline)
    except OutboundError as exc:
        # The outbound message names the URL without its query string (it may carry a key).
        raise FeedError(str(exc)) from None
    if response.status != 200:
        raise FeedError(f"HTTP {response.status} from {shown}")
    return response.body


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedError(f"{what} is not valid JSON ({str(exc).splitlines()[0][:80]})") from None


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise FeedError(f"{what} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FeedError(f"{what} is not a number: {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise FeedError(f"{what} is not a finite number")
    return number


def _moment(value: Any, what: str) -> datetime:
    """ISO 8601 text, or a Unix time in seconds or (when that large) milliseconds."""
    if isinstance(value, str) and not value.strip().lstrip("-").replace(".", "").isdigit():
        try:
            return parse_iso(value.strip())
        except ValueError:
            raise FeedError(f"{what} is not a time: {value[:40]!r}") from None
    number = _number(value, what)
    seconds = number / 1000 if abs(number) > 1e11 else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise FeedError(f"{what} is not a time: {number!r}") from None


def _checked(slots: list[SpotSlot], what: str) -> list[SpotSlot]:
    if not slots:
        raise FeedError(f"{what} has no prices")
    slots.sort(key=lambda s: s.start)
    for n, slot in enumerate(slots):
        if slot.end <= slot.start:
            raise FeedError(f"{what}: entry {n + 1} ends before it starts")
        if abs(slot.eur_per_mwh) > MAX_ABS_EUR_PER_MWH:
            raise FeedError(f"{what}: implausible price {slot.eur_per_mwh} EUR/MWh")
        if n and slot.start < slots[n - 1].end:
            raise FeedError(f"{what}: entries {n} and {n + 1} overlap")
    return slots


def parse_awattar(data: bytes) -> list[SpotSlot]:
    """aWATTar market data: `{"object":"list","data":[{"start_timestamp": ms, ...}]}`."""
    doc = _json(data, "spot feed")
    entries = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise FeedError("spot feed is not aWATTar market data (no \"data\" list)")
    slots = []
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise FeedError(f"spot feed: entry {n} is not an object")
        unit = str(entry.get("unit", "Eur/MWh")).lower()
        if unit != "eur/mwh":
            raise FeedError(f"spot feed: entry {n} is in {unit!r}, expected Eur/MWh")
        slots.append(SpotSlot(_moment(entry.get("start_timestamp"), f"spot entry {n} start"),
                              _moment(entry.get("end_timestamp"), f"spot entry {n} end"),
                              _number(entry.get("marketprice"), f"spot entry {n} marketprice")))
    return _checked(slots, "spot feed")


def _generic_slot(row: dict[str, Any], n: int) -> SpotSlot:
    missing = [k for k in ("start", "end", "price") if row.get(k) in (None, "")]
    if missing:
        raise FeedError(f"spot feed: entry {n} has no {', '.join(missing)}")
    return SpotSlot(_moment(row["start"], f"spot entry {n} start"),
                    _moment(row["end"], f"spot entry {n} end"),
                    _number(row["price"], f"spot entry {n} price"))


def parse_spot_json(data: bytes) -> list[SpotSlot]:
    """A JSON list (or `{"data": [...]}`) of `{"start", "end", "price"}`, price in EUR/MWh."""
    doc = _json(data, "spot feed")
    entries = doc.get("data") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise FeedError("spot feed is not a JSON list of {start, end, price}")
    if not all(isinstance(e, dict) for e in entries):
        raise FeedError("spot feed: every entry must be an object with start, end, price")
    return _checked([_generic_slot(e, n) for n, e in enumerate(entries, 1)], "spot feed")


def parse_spot_csv(data: bytes) -> list[SpotSlot]:
    """CSV with a header naming `start`, `end` and `price` (EUR/MWh); `,` or `;` separated."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FeedError("spot feed is not UTF-8 text") from None
    first = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text), delimiter=";" if ";" in first else ",")
    fields = {(f or "").strip().lower() for f in reader.fieldnames or []}
    if not {"start", "end", "price"} <= fields:
        raise FeedError("spot feed CSV needs a header with start, end and price")
    rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            for row in reader]
    return _checked([_generic_slot(r, n) for n, r in enumerate(rows, 1)], "spot feed")


def json_path(doc: Any, path: str) -> Any:
    """The value at a dotted path; numeric parts index lists (`result.XXBTZEUR.c.0`)."""
    node = doc
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise FeedError(f"BTC feed has no value at {path!r}")
    return node


def parse_btc(data: bytes, path: str) -> float:
    """The EUR price of one bitcoin at `path` in a JSON document (numbers or numeric text)."""
    value = _number(json_path(_json(data, "BTC feed"), path), f"BTC feed value at {path!r}")
    if value <= 0:
        raise FeedError(f"BTC feed value at {path!r} is not positive: {value}")
    return value


_SPOT_PARSERS = {"awattar": parse_awattar, "json": parse_spot_json, "csv": parse_spot_csv}


async def fetch_spot(settings: TariffFeedSettings, outbound: Outbound) -> list[SpotSlot]:
    """The spot price slots from the configured provider."""
    data = await read_source(settings.spot_url, outbound, settings.timeout_seconds)
    return _SPOT_PARSERS[settings.spot_provider](data)


async def fetch_btc(settings: TariffFeedSettings, outbound: Outbound) -> float:
    """EUR per BTC from the configured feed."""
    data = await read_source(settings.btc_url, outbound, settings.timeout_seconds)
    return parse_btc(data, settings.btc_json_path)
