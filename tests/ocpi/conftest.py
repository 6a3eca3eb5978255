"""Shared set-up for the OCPI tests: fast push retries, a registered eMSP, and a value at hand
for `eventually`."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx

from tests.doubles.emsp import Emsp
from tests.money.conftest import World

T = TypeVar("T")

FAST_PUSH = {"ocpi": {"push_backoff_seconds": 0.05, "push_attempts": 3}}


async def registered(world: World, emsp: Emsp) -> str:
    """Token A issued by the operator, then the eMSP's handshake; returns token A."""
    _, token_a = await world.app.services.ocpi.parties.issue("Test eMSP")
    versions_url = f"{world.app.http_url}/ocpi/versions"
    await emsp.register(world.http, versions_url, token_a)
    return token_a


async def command(http: httpx.AsyncClient, emsp: Emsp, name: str, ref: str,
                  **body: Any) -> httpx.Response:
    """`emsp` sends strom the OCPI command `name`; its result is to come to `…/{name}/{ref}`."""
    return await http.post(f"/ocpi/2.2.1/commands/{name}", headers=emsp.auth, json={
        "response_url": f"{emsp.base}/2.2.1/commands/{name}/{ref}", **body})


async def at_once(value: T) -> T:
    """`value` as an awaitable, for `eventually` to poll something already at hand."""
    return value
