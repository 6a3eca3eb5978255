"""Fixtures of the admin API tests: a running strom, an admin client, a way to add chargers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strom.app import StromApp
from tests.conftest import free_settings


@pytest.fixture
async def app(data_dir: Path) -> AsyncIterator[StromApp]:
    """A running strom whose chargers must answer a call within 1 s."""
    async with StromApp(free_settings(ocpp={"call_timeout": 1.0}), data_dir) as running:
        yield running


@pytest.fixture
async def admin(app: StromApp) -> AsyncIterator[httpx.AsyncClient]:
    assert app.services is not None
    headers = {"Authorization": f"Bearer {app.services.admin_token}"}
    async with httpx.AsyncClient(base_url=app.http_url, headers=headers, timeout=20) as http:
        yield http


async def add(admin: httpx.AsyncClient, cp_id: str = "cp-1", **extra: Any) -> dict[str, Any]:
    body = {"id": cp_id, "lat": 48.137, "lon": 11.575, "connectors": 2, **extra}
    answer = await admin.post("/api/v1/charge-points", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def ocpp_url(app: StromApp) -> str:
    assert app.services is not None and app.services.central_system is not None
    return app.services.central_system.url
