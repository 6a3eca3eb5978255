"""Unauthenticated LNURL callbacks used to fill the store (~115 pending sessions and invoices a
second, never purged). Now each client address has a token bucket, and pending sessions whose
invoice expired are purged — unless the wallet says the invoice was paid after all."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.money.conftest import CP, World, running_world


async def _callback(world: World) -> str:
    pay = (await world.http.get(f"/lnurlp/{CP}")).json()
    return str(pay["callback"])


async def test_a_flood_of_pay_callbacks_is_refused_per_address(data_dir: Path) -> None:
    # The default burst; a refill slow enough that the test's own pace does not matter.
    async with running_world(data_dir, lnurl={"callbacks_per_minute": 0.1}) as world:
        await _flood(world)


async def _flood(world: World) -> None:
    callback = await _callback(world)
    answers = [await world.http.get(callback, params={"amount": 1_000_000}) for _ in range(25)]
    made = [a for a in answers if a.status_code == 200 and "pr" in a.json()]
    refused = [a for a in answers if a.status_code == 429]
    assert len(made) == 10 and len(refused) == 15, [a.status_code for a in answers]
    for answer in refused:
        body = answer.json()  # LUD-06: a wallet shows the reason to its user
        assert body["status"] == "ERROR" and "too many payment requests" in body["reason"]
    assert await world.app.services.sessions.repo.count() == 10
    # A made-up forwarding header changes nothing while no proxy is configured.
    spoofed = await world.http.get(callback, params={"amount": 1_000_000},
                                   headers={"X-Forwarded-For": "203.0.113.9"})
    assert spoofed.status_code == 429


async def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(data_dir: Path) -> None:
    async with running_world(data_dir, http={"client_address_header": "X-Forwarded-For"},
                             lnurl={"callback_burst": 2, "callbacks_per_minute": 0.1}) as world:
        callback = await _callback(world)

        async def ask(client: str) -> httpx.Response:
            return await world.http.get(callback, params={"amount": 1_000_000},
                                        headers={"X-Forwarded-For": f"10.0.0.1, {client}"})

        assert [(await ask("198.51.100.1")).status_code for _ in range(3)] == [200, 200, 429]
        assert (await ask("198.51.100.1")).status_code == 429
        assert (await ask("198.51.100.2")).status_code == 200
