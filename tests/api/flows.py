"""Driving a running strom the way users do: a driver pays over LNURL, a charger charges."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.api.charger import TestCharger


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Poll `check` until it holds; TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


async def newest_item(http: httpx.AsyncClient, path: str,
                      check: Callable[[dict[str, Any]], bool],
                      within: float = 10) -> dict[str, Any]:
    """Poll an admin list route until its newest item passes `check`; that item."""
    async with asyncio.timeout(within):
        while True:
            items = (await http.get(path)).json()["items"]
            if items and check(items[0]):
                return items[0]
            await asyncio.sleep(0.05)


async def wait_for_session(http: httpx.AsyncClient, cp_id: str, *states: str,
                           within: float = 10) -> dict[str, Any]:
    """Poll the admin API until the newest session of `cp_id` is in one of `states`."""
    async with asyncio.timeout(within):
        while True:
            items = (await http.get("/api/v1/sessions", params={"cp_id": cp_id})).json()["items"]
            if items and items[0]["state"] in states:
                return items[0]
            await asyncio.sleep(0.05)


async def pay_and_charge(http: httpx.AsyncClient, charger: TestCharger, cp_id: str,
                         amount_msat: int = 2_000_000, energy_wh: float = 1500.0,
                         power_w: float = 7400.0) -> dict[str, Any]:
    """Pay `amount_msat` for `cp_id` with the dev wallet; the session is charging when this returns.

    `http` carries the admin token (the dev wallet's pay route is an admin route).
    """
    pay = (await http.get(f"/lnurlp/{cp_id}/callback", params={"amount": amount_msat})).json()
    assert "pr" in pay, pay
    paid = await http.post("/api/v1/dev/pay", json={"bolt11": pay["pr"]})
    assert paid.status_code == 200, paid.text
    await wait_for_session(http, cp_id, "charging")
    connector = next(iter(charger.transactions))
    await charger.meter(connector, energy_wh, power_w)
    async with asyncio.timeout(10):
        while True:
            session = await wait_for_session(http, cp_id, "charging")
            if session["energy_wh"] >= energy_wh:
                return session
            await asyncio.sleep(0.05)
