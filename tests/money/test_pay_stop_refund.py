"""Pay to charge and get the rest back, through the public interfaces only: LNURL (with the
lnurl library as the wallet), the session page, OCPP (simulated charger) and the admin API."""

from __future__ import annotations

import asyncio

import httpx
import lnurl
import pytest

from strom.lnurl.codec import lnurl_encode
from tests.money.conftest import CP, World
from tests.polling import eventually

SAT = 1000


async def test_budget_runs_out_then_refund_once(world: World) -> None:
    session = await world.pay_to_charge(1_500 * SAT)
    assert session["paid_msat"] == 1_500 * SAT
    url = session["url"]
    session = await world.session_until(url, lambda s: s["state"] == "stopped")
    assert session["stop_reason"] == "budget used up"
    assert session["energy_wh"] > 0
    assert 0 < session["consumed_msat"] <= session["paid_msat"]
    assert session["paid_msat"] == session["consumed_msat"] + session["refundable_msat"]
    # The charger was told to stop and did: its connector is free again.
    await world.charger.wait_for(lambda: world.charger.connector_status(1) in
                                 ("Finishing", "Available"))

    refundable = session["refundable_msat"]
    done, _ = await world.withdraw_all(session["lnurlw"])
    assert done.status == "OK"
    session = await world.session(url)
    assert session["state"] == "refunded"
    assert session["refunded_msat"] == refundable and session["refundable_msat"] == 0
    again = await lnurl.handle(session["lnurlw"])
    assert isinstance(again, lnurl.LnurlErrorResponse)
    assert "already paid" in again.reason
    await world.ledger_ok()


async def test_driver_stops_with_the_withdraw_link(world: World) -> None:
    session = await world.pay_to_charge(50_000 * SAT)
    url = session["url"]
    await world.session_until(url, lambda s: s["state"] == "charging" and s["energy_wh"] > 0)
    request = await lnurl.handle(session["lnurlw"])  # opening the link stops the charger
    assert isinstance(request, lnurl.LnurlWithdrawResponse)
    stopped = await world.session(url)
    assert stopped["state"] == "stopped" and stopped["stop_reason"] == "stopped by the driver"
    assert int(request.maxWithdrawable) == stopped["refundable_msat"] > 0
    assert world.charger.transaction_id(1) is None  # StopTransaction went out
    await world.ledger_ok()


async def test_static_qr_while_charging_needs_the_session_token(world: World) -> None:
    session = await world.pay_to_charge(50_000 * SAT)
    url = session["url"]
    await world.session_until(url, lambda s: s["state"] == "charging")
    token = url.rsplit("/", 1)[1]
    base = world.app.services.settings.public_url
    busy = await lnurl.handle(lnurl_encode(f"{base}/lnurlp/{CP}-1"))
    assert isinstance(busy, lnurl.LnurlErrorResponse)
    assert "charging" in busy.reason and "stop & refund link" in busy.reason
    # The other connector is still free for someone else.
    assert isinstance(await lnurl.handle(lnurl_encode(f"{base}/lnurlp/{CP}-2")),
                      lnurl.LnurlPayResponse)
    # A stranger with a made-up token cannot stop it.
    stranger = await lnurl.handle(lnurl_encode(f"{base}/lnurlp/{CP}?s=not-the-token"))
    assert isinstance(stranger, lnurl.LnurlErrorResponse)
    assert (await world.session(url))["state"] == "charging"
    payer = await lnurl.handle(lnurl_encode(f"{base}/lnurlp/{CP}?s={token}"))
    assert isinstance(payer, lnurl.LnurlWithdrawResponse)
    assert (await world.session(url))["state"] == "stopped"


async def test_bad_lnurl_parameters_get_human_reasons(world: World) -> None:
    callback = f"/lnurlp/{CP}/callback"
    for params, reason in [({}, "amount is missing"), ({"amount": "12.5"}, "whole number"),
                           ({"amount": "5"}, "below minimum"),
                           ({"amount": str(10**12)}, "above maximum")]:
        answer = (await world.http.get(callback, params=params)).json()
        assert answer["status"] == "ERROR", answer
        assert reason in answer["reason"], (params, answer["reason"])
    unknown = (await world.http.get("/lnurlp/nobody")).json()
    assert unknown["status"] == "ERROR" and "unknown charger" in unknown["reason"]


async def test_two_payers_race_for_one_connector(world: World) -> None:
    """Both get an invoice while the connector is free; one session charges, one is refunded."""
    base = world.app.services.settings.public_url
    pay = await lnurl.handle(lnurl_encode(f"{base}/lnurlp/{CP}-1"))
    actions = await asyncio.gather(*[lnurl.execute_pay_request(pay, 20_000 * SAT)
                                     for _ in range(2)])
    await asyncio.gather(*[world.http.post("/api/v1/dev/pay", json={"bolt11": str(a.pr)},
                                           headers=world.admin) for a in actions])
    urls = [str(a.successAction.url) for a in actions]
    states = await eventually(
        lambda: asyncio.gather(*[world.session(u) for u in urls]),
        lambda found: sorted(s["state"] for s in found) == ["charging", "failed"])
    failed = next(s for s in states if s["state"] == "failed")
    assert failed["refundable_msat"] == 20_000 * SAT
    done, _ = await world.withdraw_all(failed["lnurlw"])
    assert done.status == "OK"
    await world.ledger_ok()


async def test_hundred_concurrent_withdraw_callbacks_pay_once(world: World) -> None:
    session = await world.pay_to_charge(50_000 * SAT)
    url = session["url"]
    await world.session_until(url, lambda s: s["state"] == "charging")
    request = await lnurl.handle(session["lnurlw"])
    assert isinstance(request, lnurl.LnurlWithdrawResponse)
    from tests.doubles.edges import make_invoice

    invoice = make_invoice(int(request.maxWithdrawable))
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*[
            client.get(str(request.callback), params={"k1": request.k1, "pr": invoice})
            for _ in range(100)])
    oks = [a.json() for a in answers if a.json().get("status") == "OK"]
    assert len(oks) == 1
    session = await world.session(url)
    assert session["refunded_msat"] == int(request.maxWithdrawable)
    payments = await world.http.get("/api/v1/ledger/check", headers=world.admin)
    assert payments.json()["ok"]


@pytest.mark.parametrize("amount", [1_000 * SAT])
async def test_session_page_html_and_live_events(world: World, amount: int) -> None:
    session = await world.pay_to_charge(amount)
    page = await world.http.get(session["url"])
    assert page.status_code == 200 and "Your charging session" in page.text
    assert "Stop and refund" in page.text or "Get your refund" in page.text


async def test_ledger_check_compares_with_the_wallets_records(world: World) -> None:
    session = await world.pay_to_charge(1_000 * SAT)
    session = await world.session_until(session["url"], lambda s: s["state"] == "stopped")
    await world.withdraw_all(session["lnurlw"])
    await world.ledger_ok()
    db = world.app.services.db
    await db.execute("UPDATE ln_payments SET status = 'failed'")
    await db.execute("UPDATE ln_invoices SET state = 'open', paid_at = NULL, received_msat = NULL")
    check = await world.http.get("/api/v1/ledger/check", headers=world.admin)
    assert check.status_code == 409
    problems = " ".join(check.json()["problems"])
    assert "the wallet says open" in problems and "the wallet's payment failed" in problems


async def test_aes_success_action_reveals_the_session_link_to_the_payer(world: World) -> None:
    from strom.events import InvoicePaid

    world.app.services.settings.lnurl.success_action = "aes"
    base = world.app.services.settings.public_url
    pay = await lnurl.handle(lnurl_encode(f"{base}/lnurlp/{CP}"))
    action = await lnurl.execute_pay_request(pay, 1_000 * SAT)
    assert action.successAction.tag == "aes"
    async with world.app.services.bus.listen(InvoicePaid) as paid:
        await world.http.post("/api/v1/dev/pay", json={"bolt11": str(action.pr)},
                              headers=world.admin)
        preimage = (await asyncio.wait_for(paid.get(), 5)).preimage  # what the payer's wallet gets
    url = lnurl.aes_decrypt(bytes.fromhex(preimage), action.successAction.ciphertext,
                            action.successAction.iv)
    assert url.startswith(f"{base}/s/")
    assert (await world.session_until(url, lambda s: s["paid_msat"] == 1_000 * SAT))["cp_id"] == CP


async def test_configured_image_is_in_the_metadata(world: World, tmp_path) -> None:  # noqa: ANN001
    from strom import qr

    image = tmp_path / "sticker.png"
    image.write_bytes(qr.png("strom"))
    world.app.services.settings.lnurl.image_path = str(image)
    pay = await lnurl.handle(lnurl_encode(f"{world.app.services.settings.public_url}/lnurlp/{CP}"))
    assert isinstance(pay, lnurl.LnurlPayResponse)
    assert any(mime == "image/png;base64" for mime, _ in pay.metadata.list())
    action = await lnurl.execute_pay_request(pay, 1_000 * SAT)
    import hashlib

    import bolt11
    assert bolt11.decode(str(action.pr)).description_hash == \
        hashlib.sha256(str(pay.metadata).encode()).hexdigest()


async def test_top_up_from_the_session_page_adds_to_the_budget(world: World) -> None:
    session = await world.pay_to_charge(20_000 * SAT)
    url = session["url"]
    await world.session_until(url, lambda s: s["state"] == "charging")
    token = url.rsplit("/", 1)[1]
    topup = await lnurl.handle(lnurl_encode(f"{world.app.services.settings.public_url}"
                                            f"/s/{token}/topup"))
    assert isinstance(topup, lnurl.LnurlPayResponse)
    action = await lnurl.execute_pay_request(topup, 5_000 * SAT)
    paid = await world.http.post("/api/v1/dev/pay", json={"bolt11": str(action.pr)},
                                 headers=world.admin)
    assert paid.json()["settled"]
    more = await world.session_until(url, lambda s: s["paid_msat"] == 25_000 * SAT)
    assert more["state"] == "charging"
    await world.ledger_ok()
