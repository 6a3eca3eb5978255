"""Issue 16, defect 2: separate rights, separate tokens. The top-up link (shown to others on
purpose) can only pay; the read-only view link can only look; only the payer's link stops
and refunds. Driven like a wallet does: LNURL over HTTP with the lnurl library."""

from __future__ import annotations

import re

import lnurl

from strom.lnurl.codec import lnurl_decode
from tests.money.conftest import CP, World

SAT = 1000


async def test_the_top_up_link_can_only_pay(world: World) -> None:
    session = await world.pay_to_charge(50_000 * SAT)
    url = session["url"]
    token = url.rsplit("/", 1)[1]
    await world.session_until(url, lambda s: s["state"] == "charging")
    page = (await world.http.get(url)).text
    topup = re.search(r'id="topup-link" href="lightning:([^"]+)"', page).group(1)
    assert token not in lnurl_decode(topup), "the top-up link carries the payer's token"

    # A friend pays into the session with the top-up link ...
    pay = await lnurl.handle(topup)
    assert isinstance(pay, lnurl.LnurlPayResponse), pay
    action = await lnurl.execute_pay_request(pay, 20_000 * SAT)
    assert token not in action.model_dump_json()
    paid = await world.http.post("/api/v1/dev/pay", json={"bolt11": str(action.pr)},
                                 headers=world.admin)
    assert paid.json()["settled"]
    await world.session_until(url, lambda s: s["paid_msat"] == 70_000 * SAT)

    # ... but the top-up token opens neither the stop & refund link nor the payer's page.
    topup_token = lnurl_decode(topup).rstrip("/").split("/")[-1]
    base = world.app.services.settings.public_url
    for probe in (f"{base}/lnurlw/{topup_token}", f"{base}/lnurlp/{CP}?s={topup_token}"):
        refused = await lnurl.handle(probe)
        assert isinstance(refused, lnurl.LnurlErrorResponse), (probe, refused)
    assert (await world.http.get(f"/s/{topup_token}",
                                 headers={"Accept": "application/json"})).status_code == 404
    assert (await world.session(url))["state"] == "charging"


async def test_the_view_link_can_only_look(world: World) -> None:
    session = await world.pay_to_charge(50_000 * SAT)
    token = session["url"].rsplit("/", 1)[1]
    view_url = session["view_url"]
    assert token not in view_url
    seen = await world.session_until(view_url, lambda s: s["state"] == "charging")
    assert seen["lnurlw"] is None and token not in str(seen)
    page = (await world.http.get(view_url)).text
    assert token not in page and "stop-link" not in page
    view_token = view_url.rsplit("/", 1)[1]
    base = world.app.services.settings.public_url
    refused = await lnurl.handle(f"{base}/lnurlw/{view_token}")
    assert isinstance(refused, lnurl.LnurlErrorResponse)
    assert (await world.session(session["url"]))["state"] == "charging"
    # The payer's own link keeps working: it stops and offers the refund.
    request = await lnurl.handle(session["lnurlw"])
    assert isinstance(request, lnurl.LnurlWithdrawResponse)
    await world.ledger_ok()
