"""Shared fixtures: real servers on free loopback ports, in temporary data dirs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from strom.app import StromApp
from strom.config import OutboundSettings, Settings
from strom.outbound import Outbound
from strom.store.db import Database


def free_settings(**sections: dict) -> Settings:
    """Settings with every listener on an OS-chosen free port."""
    base: dict = {"http": {"port": 0}, "ocpp": {"port": 0}, "relay": {"port": 0},
                  "outbound": {"allow_private": True}}  # the doubles listen on loopback
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return Settings.model_validate(base)


def loopback_outbound() -> Outbound:
    """Outbound fetches that may reach the loopback doubles the tests run."""
    return Outbound(OutboundSettings(allow_private=True))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "test.sqlite3")
    yield database
    await database.close()


@pytest.fixture
async def app(data_dir: Path) -> AsyncIterator[StromApp]:
    """A running strom (not demo mode) with free ports."""
    async with StromApp(free_settings(), data_dir) as running:
        yield running
