"""A backend (`backend.Backend`), strom's central system with passthrough in front of it, and
a charger (the ocpp library's ChargePoint, `tests/api/charger.py`) whose frames are recorded."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from strom.app import StromApp
from strom.config import PassthroughSettings
from strom.passthrough.config import UpstreamConfig
from strom.passthrough.connection import Passthrough
from strom.store.db import Database
from tests.api.charger import TestCharger, running_charger
from tests.api.conftest import admin, app  # noqa: F401  (fixtures of test_config.py)
from tests.conftest import free_settings
from tests.money.conftest import CP
from tests.ocpp.conftest import Ocpp, start_ocpp
from tests.passthrough.backend import PASSWORD, Backend, Recording
from tests.passthrough.backend201 import Backend201

B = TypeVar("B", bound=Backend)

FAST = PassthroughSettings(answer_timeout=2.0, reconnect_min_seconds=0.05,
                           reconnect_max_seconds=0.2)


class RecordedCharger(TestCharger):
    """The test charger, with every raw frame it sent and got in `frames`; it also keeps
    configuration, as strom and the backend both set it."""

    def __init__(self, cp_id: str, ws: Any, connectors: int) -> None:
        self.frames: list[tuple[str, str]] = []
        super().__init__(cp_id, Recording(ws, self.frames), connectors)
        self.config = {"MeterValuesSampledData": "Energy.Active.Import.Register",
                       "MeterValueSampleInterval": "60"}

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str,
                                      value: str) -> call_result.ChangeConfiguration:
        self.config[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None
                                   ) -> call_result.GetConfiguration:
        known = [{"key": k, "readonly": False, "value": v} for k, v in self.config.items()
                 if key is None or k in key]
        return call_result.GetConfiguration(
            configuration_key=known, unknown_key=[k for k in key or [] if k not in self.config])

    def received_calls(self) -> list[list[Any]]:
        calls = [json.loads(raw) for way, raw in self.frames if way == "in"]
        return [c for c in calls if c[0] == 2]


@contextlib.asynccontextmanager
async def serving(server: B) -> AsyncIterator[B]:
    """The backend `server` (1.6 `Backend` or 2.0.1 `Backend201`) listening, closed after."""
    await server.start()
    try:
        yield server
    finally:
        if server.server is not None:
            server.server.close()


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with serving(Backend()) as server:
        yield server


@pytest.fixture
async def backend201() -> AsyncIterator[Backend201]:
    async with serving(Backend201()) as server:
        yield server


@contextlib.asynccontextmanager
async def shared_strom(data_dir: Path, upstream: UpstreamConfig) -> AsyncIterator[StromApp]:
    """strom (money and all) whose charger `CP` passes through to `upstream`."""
    settings = free_settings(sessions={"stop_timeout": 5.0}, passthrough={
        "answer_timeout": 2.0, "reconnect_min_seconds": 0.05, "reconnect_max_seconds": 0.2})
    async with StromApp(settings, data_dir) as strom:
        assert strom.services is not None and strom.services.central_system is not None
        await strom.services.charge_points.add(CP, name="Shared Street", lat=50.1, lon=8.7,
                                               num_connectors=2)
        await strom.services.charge_points.update(CP, upstream=upstream.to_json())
        yield strom


@pytest.fixture
async def proxy(db: Database, backend: Backend) -> AsyncIterator[Ocpp]:
    """strom's central system; cp-1 has the backend as its upstream (a pure proxy here:
    no sessions)."""
    server, bus = await start_ocpp(db, call_timeout=2.0)
    server.central.connection_factory = Passthrough(
        FAST, outbound=None, max_message_bytes=65536)
    await server.charge_points.update("cp-1", upstream=UpstreamConfig(
        backend.url("cp-1"), password=PASSWORD).to_json())
    yield server
    await server.central.close()
    await bus.close()


def recorded_charger(url: str, cp_id: str,
                     connectors: int = 2) -> contextlib.AbstractAsyncContextManager[Any]:
    """A booted `RecordedCharger` connected to `url` + cp_id."""
    return running_charger(url, cp_id, connectors, charger_class=RecordedCharger)
