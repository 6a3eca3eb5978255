"""The charger loses its network mid-session (no closing handshake) and comes back with the
MeterValues it queued meanwhile: the session goes on and is billed for all of it."""

from __future__ import annotations

import lnurl

from tests.money.conftest import CP, World
from tests.polling import eventually


async def test_charger_offline_mid_session_and_back(world: World) -> None:
    session = await world.pay_to_charge(50_000_000)
    url = session["url"]
    before = await world.session_until(url, lambda s: s["state"] == "charging"
                                       and s["energy_wh"] > 0)
    await world.charger.drop(offline_for=1.5)  # no closing handshake: the network is gone
    services = world.app.services
    await eventually(lambda: services.charge_points.get(CP), lambda cp: cp.status == "Offline")
    # It keeps charging and queues its MeterValues; back online they arrive and count.
    after = await world.session_until(url, lambda s: s["energy_wh"] > before["energy_wh"] + 50
                                      and s["state"] == "charging")
    assert after["paid_msat"] == before["paid_msat"]
    request = await lnurl.handle(after["lnurlw"])
    assert isinstance(request, lnurl.LnurlWithdrawResponse)
    stopped = await world.session(url)
    assert stopped["state"] == "stopped"
    assert stopped["paid_msat"] == stopped["consumed_msat"] + stopped["refundable_msat"]
    await world.ledger_ok()
