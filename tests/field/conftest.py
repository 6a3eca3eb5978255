"""A running strom for the field replays: a price, and a prepayment no recorded session uses up
(the budget stop never cuts a replay short)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from strom.app import StromApp
from tests.conftest import free_settings
from tests.money.conftest import World

PRICE_MSAT_PER_KWH = 300_000
PREPAY_MSAT = 100_000_000


@pytest.fixture
async def world(data_dir: Path) -> AsyncIterator[World]:
    settings = free_settings(sessions={"stop_timeout": 5.0},
                             tariff={"price_msat_per_kwh": PRICE_MSAT_PER_KWH,
                                     "max_prepay_msat": PREPAY_MSAT})
    async with StromApp(settings, data_dir) as app:
        async with httpx.AsyncClient(base_url=app.http_url, timeout=30) as http:
            yield World(app, None, http)  # type: ignore[arg-type]  # the charger is a recording
