"""Shared set-up for the OCPI tests: fast push retries, a registered eMSP, and a value at hand
for `eventually`."""

from __future__ import annotations

from typing import TypeVar

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


async def at_once(value: T) -> T:
    """`value` as an awaitable, for `eventually` to poll something already at hand."""
    return value
