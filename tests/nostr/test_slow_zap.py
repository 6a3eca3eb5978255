"""A zap saying "slow" buys the charger's slow rate (issue 21), set here per charger."""

from __future__ import annotations

import httpx
from nostr_sdk import Keys

from strom.app import StromApp
from strom.paths import admin_token_path
from tests.nostr.conftest import CP, Driver
from tests.nostr.test_zaps_and_dms import AMOUNT, dev_pay, zap_request
from tests.polling import eventually


async def test_a_zap_saying_slow_buys_the_slow_rate(
        nostr_app: tuple[StromApp, Keys], driver: Driver, http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    token = admin_token_path(app.data_dir).read_text().strip()
    override = await http.put(f"/api/v1/tariffs/{CP}", headers={"Authorization": f"Bearer {token}"},
                              json={"slow_max_power_w": 3680, "slow_price_msat_per_kwh": 100_000})
    assert override.status_code == 200, override.text
    shown = (await http.get(f"/lnurlp/{CP}")).json()["metadata"]
    assert 'zap with the word \\"slow\\"' in shown and "3.7 kW for 100 sat per kWh" in shown
    cp_pub = cp_keys.public_key().to_hex()
    assert app.relay is not None
    request = zap_request(driver.keys, cp_pub, app.relay.url, content="Slow please")
    answer = (await http.get(f"/lnurlp/{CP}/callback",
                             params={"amount": AMOUNT, "nostr": request})).json()
    assert "pr" in answer, answer
    await dev_pay(app, http, answer["pr"])
    assert app.services is not None and app.services.sessions is not None
    repo = app.services.sessions.repo
    sessions = await eventually(lambda: repo.list(cp_id=CP),
                                lambda found: bool(found) and found[0].paid_msat == AMOUNT)
    assert sessions[0].tariff.max_power_w == 3680
    assert sessions[0].tariff.price_msat_per_kwh == 100_000
