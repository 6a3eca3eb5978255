"""Issue "Pay to charge", must show: a wallet resolves the charger's lightning address with
the `lnurl` library, `strom wallet pay` pays the invoice, the simulated charger charges, the
session page shows energy and cost rising, and the session stops at the budget."""

from __future__ import annotations

import asyncio
import os
import sys

import lnurl

from tests.money.conftest import CP, World
from tests.polling import eventually


async def strom_wallet_pay(world: World, invoice: str) -> str:
    env = {**os.environ, "STROM_DATA_DIR": str(world.app.data_dir)}
    env.pop("STROM_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "strom", "wallet", "pay", invoice, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_lightning_address_cli_payment_and_budget_stop(world: World) -> None:
    # The address as printed on the page; the lnurl library turns it into its LUD-16 URL.
    page = (await world.http.get(f"/api/v1/public/charge-points/{CP}")).json()
    user, _, host = page["lud16"].partition("@")
    resolved = lnurl.LnAddress(f"{user}@strom.example").url
    assert str(resolved) == f"https://strom.example/.well-known/lnurlp/{CP}"
    # Served here on loopback: same path, local base.
    pay = await lnurl.get(f"http://{host}{resolved.path}")
    assert isinstance(pay, lnurl.LnurlPayResponse)
    assert "300 sat per kWh" in pay.metadata.text
    assert ("text/identifier", page["lud16"]) in pay.metadata.list()
    action = await lnurl.execute_pay_request(pay, 2_000_000)
    printed = await strom_wallet_pay(world, str(action.pr))
    assert "settled" in printed or "paid" in printed

    url = str(action.successAction.url)
    seen = []

    async def watch() -> dict:
        seen.append(await world.session(url))
        return seen[-1]

    final = await eventually(watch, lambda s: s["state"] == "stopped", seconds=30)
    charging = [s for s in seen if s["state"] == "charging"]
    energies = [s["energy_wh"] for s in charging]
    costs = [s["consumed_msat"] for s in charging]
    assert len(set(energies)) >= 3, "the page should show energy rising while charging"
    assert energies == sorted(energies) and costs == sorted(costs)
    assert final["stop_reason"] == "budget used up"
    assert 0 < final["consumed_msat"] <= final["paid_msat"] == 2_000_000
