"""A local HTTP server for tariff feeds: recorded files, broken answers, slow answers; a clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strom.config import TariffSettings
from strom.http_server import HttpServer

DATA = Path(__file__).parents[1] / "data"
DAY = datetime(2024, 5, 14, tzinfo=UTC)  # the day of the recorded spot prices


def recorded(name: str) -> bytes:
    return (DATA / name).read_bytes()


@dataclass
class Answer:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class FeedServer:
    """`async with FeedServer() as feeds:`; `feeds.answer("spot", ...)`, `feeds.url("spot")`."""

    answers: dict[str, Answer] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    _http: HttpServer | None = None

    def answer(self, name: str, body: bytes | str, status: int = 200, *,
               content_type: str = "application/json", delay: float = 0.0) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.answers[name] = Answer(data, status, content_type, delay)

    def recorded(self, name: str, file: str) -> None:
        self.answer(name, recorded(file),
                    content_type="text/csv" if file.endswith(".csv") else "application/json")

    def url(self, name: str) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.port}/{name}"

    async def _serve(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        answer = self.answers.get(name)
        if answer is None:
            return Response(b"not found", 404)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return Response(answer.body, answer.status, media_type=answer.content_type)

    async def __aenter__(self) -> FeedServer:
        app = Starlette(routes=[Route("/{name}", self._serve)])
        self._http = HttpServer(app, "127.0.0.1", 0)
        await self._http.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._http is not None
        await self._http.close()

    def settings(self, **tariff: Any) -> TariffSettings:
        """Dynamic tariff settings reading this server's `spot` and `btc` feeds."""
        feeds = {"spot_url": self.url("spot"), "btc_url": self.url("btc"),
                 "interval_seconds": 900, "max_age_seconds": 7200, "timeout_seconds": 5}
        feeds.update(tariff.pop("feeds", {}))
        dynamic = {"markup": 1.0, "fixed_eur_per_kwh": 0.15, "tax_percent": 19.0,
                   "floor_msat_per_kwh": 0, "ceiling_msat_per_kwh": 5_000_000}
        dynamic.update(tariff.pop("dynamic", {}))
        return TariffSettings.model_validate(
            {"mode": "dynamic", "price_msat_per_kwh": 300_000, "dynamic": dynamic,
             "feeds": feeds, **tariff})


@dataclass
class Clock:
    """A settable clock for the tariff service; starts at 10:30 UTC on the recorded day."""

    now: datetime = DAY + timedelta(hours=10, minutes=30)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def expected_msat(spot_eur_per_mwh: float, btc_eur: float, *, markup: float = 1.0,
                  fixed: float = 0.15, tax: float = 19.0) -> int:
    """The price formula written out independently of strom's code, in exact arithmetic."""
    f = Fraction
    eur = (f(str(spot_eur_per_mwh)) * f(str(markup)) / 1000 + f(str(fixed))) \
        * (100 + f(str(tax))) / 100
    return round(eur * 100_000_000_000 / f(str(btc_eur)))


async def until(condition: Callable[[], bool | Awaitable[bool]], seconds: float = 5.0) -> None:
    """Poll state that no event announces (e.g. what a scheduled fetch left behind)."""
    for _ in range(int(seconds / 0.02)):
        met = condition()
        if await met if isinstance(met, Awaitable) else met:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not met within {seconds} s")
