"""Fixtures of the unit tests: a recording central system and a simulated charger (the
simulator tests), the session services' harness `h` (tests/unit/sessions_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from strom.simulator import SimulatedChargePoint
from strom.store.db import Database
from tests.unit.sessions_support import Harness, harness
from tests.unit.simulator_support import FAST, CentralSystem


@pytest.fixture
async def cs() -> AsyncIterator[CentralSystem]:
    async with CentralSystem() as central:
        yield central


@pytest.fixture
async def sim(cs: CentralSystem) -> AsyncIterator[SimulatedChargePoint]:
    async with SimulatedChargePoint("cp-1", cs.url, connectors=2, **FAST) as charger:
        await charger.wait_for(lambda: charger.booted)
        await cs.until(lambda: len(cs.of("StatusNotification")) >= 3)
        yield charger


@pytest.fixture
async def h(db: Database) -> AsyncIterator[Harness]:
    async with harness(db) as running:
        yield running
