"""Zapping a charger starts a session; DMs answer in kind; only the payer may stop or refund."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import bolt11
import httpx
from nostr_sdk import (
    Event,
    EventBuilder,
    Keys,
    Kind,
    PublicKey,
    Tag,
    nip04_decrypt,
    nip04_encrypt,
    nip17_make_private_msg,
)

from strom.app import StromApp
from strom.lnurl.codec import lnurl_decode
from strom.paths import admin_token_path
from strom.sessions.model import State
from tests.money.field_charger import FieldCharger
from tests.nostr.conftest import CP, Driver, cp_available, keyed_strom
from tests.polling import eventually

AMOUNT = 2_000_000


def zap_request(sender: Keys, recipient: str, relay: str, amount: int | None = AMOUNT,
                extra: list[list[str]] | None = None, content: str = "for the road") -> str:
    tags = [["p", recipient], ["relays", relay]]
    if amount is not None:
        tags.append(["amount", str(amount)])
    tags += extra or []
    return (EventBuilder(Kind(9734), content).tags([Tag.parse(t) for t in tags])
            .finalize(sender).as_json())


async def zap_answer(app: StromApp, http: httpx.AsyncClient, driver: Driver,
                     cp_pub: str) -> dict:
    """The LNURL callback's answer to a fresh zap request from `driver`."""
    request = zap_request(driver.keys, cp_pub, app.relay.url)
    return (await http.get(f"/lnurlp/{CP}/callback",
                           params={"amount": AMOUNT, "nostr": request})).json()


async def dev_pay(app: StromApp, http: httpx.AsyncClient, invoice: str) -> None:
    token = admin_token_path(app.data_dir).read_text().strip()
    paid = await http.post("/api/v1/dev/pay", json={"bolt11": invoice},
                           headers={"Authorization": f"Bearer {token}"})
    assert paid.status_code == 200 and paid.json()["settled"], paid.text


async def test_zap_starts_a_session_and_gets_a_receipt(
        nostr_app: tuple[StromApp, Keys], driver: Driver, http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    cp_pub = cp_keys.public_key().to_hex()
    pay = (await http.get(f"/lnurlp/{CP}")).json()
    assert pay.get("tag") == "payRequest", pay
    assert pay["allowsNostr"] is True and pay["nostrPubkey"] == cp_pub
    request = zap_request(driver.keys, cp_pub, app.relay.url)
    answer = (await http.get(f"/lnurlp/{CP}/callback",
                             params={"amount": AMOUNT, "nostr": request})).json()
    invoice = bolt11.decode(answer["pr"])
    assert invoice.amount_msat == AMOUNT
    assert invoice.description_hash == hashlib.sha256(request.encode()).hexdigest()
    await dev_pay(app, http, answer["pr"])

    receipt = await driver.next(9735)
    assert receipt.verify() and receipt.author().to_hex() == cp_pub
    t = {x.to_vec()[0]: x.to_vec()[1:] for x in receipt.tags()}
    assert t["bolt11"] == [answer["pr"]] and t["description"] == [request]
    assert t["P"] == [driver.pubkey] and t["p"] == [cp_pub]
    assert len(t["preimage"][0]) == 64
    assert hashlib.sha256(bytes.fromhex(t["preimage"][0])).hexdigest() == invoice.payment_hash

    assert app.services is not None and app.services.sessions is not None
    sessions = await app.services.sessions.repo.list(cp_id=CP)
    assert len(sessions) == 1 and sessions[0].payer_pubkey == driver.pubkey
    assert sessions[0].paid_msat == AMOUNT
    # The payer is told on nostr: payment received, then charging started — in that order by
    # the messages' own dates (strictly increasing), whatever order the relay delivers them in.
    rumors = await driver.rumors(2)
    texts = [rumor.content() for rumor in rumors]
    assert "Payment of 2,000 sat received" in texts[0], texts
    assert "Charging started" in texts[1], texts
    dates = [rumor.created_at().as_secs() for rumor in rumors]
    assert dates[0] < dates[1], dates


async def test_forged_and_malformed_zaps_are_rejected(
        nostr_app: tuple[StromApp, Keys], driver: Driver, http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    cp_pub = cp_keys.public_key().to_hex()
    good = json.loads(zap_request(driver.keys, cp_pub, app.relay.url))
    forged = dict(good, content="changed after signing")
    other = Keys.generate().public_key().to_hex()
    cases = {
        json.dumps(forged): "invalid id or signature",
        zap_request(driver.keys, other, app.relay.url): "another recipient",
        zap_request(driver.keys, cp_pub, app.relay.url, amount=5): "does not match",
        zap_request(driver.keys, cp_pub, app.relay.url, extra=[["p", other]]): "exactly one p",
        "{not json": "not a valid nostr event",
        (EventBuilder(Kind(1), "").tags([Tag.parse(["p", cp_pub])]).finalize(driver.keys)
         .as_json()): "kind 9734",
    }
    for raw, reason in cases.items():
        answer = (await http.get(f"/lnurlp/{CP}/callback",
                                 params={"amount": AMOUNT, "nostr": raw})).json()
        assert answer["status"] == "ERROR" and reason in answer["reason"], (reason, answer)
    assert app.services is not None and app.services.sessions is not None
    assert await app.services.sessions.repo.list(cp_id=CP) == []


async def dm17(driver: Driver, cp_pub: str, text: str, answer_starts: str = "") -> str:
    """Send `text`; the charger's answer (session notifications stay for `Driver.dm`)."""
    mark = driver.received
    await driver.client.publish(nip17_make_private_msg(driver.keys, PublicKey.parse(cp_pub),
                                                       text))
    return await driver.dm(answer_starts, sender=cp_pub, after=mark)


async def test_dm_commands_in_nip17_and_nip04(
        nostr_app: tuple[StromApp, Keys], driver: Driver) -> None:
    _, cp_keys = nostr_app
    cp_pub = cp_keys.public_key().to_hex()
    assert "stop –" in await dm17(driver, cp_pub, "help")
    assert "Zap Charger: Available" in await dm17(driver, cp_pub, "STATUS")
    assert "Only the payer" in await dm17(driver, cp_pub, "stop")
    assert "Nothing to refund" in await dm17(driver, cp_pub, "refund")
    assert "Only operators" in await dm17(driver, cp_pub, "reset")

    secret = nip04_encrypt(driver.keys.secret_key(), cp_keys.public_key(), "price")
    await driver.client.publish(EventBuilder(Kind(4), secret)
                                .tags([Tag.parse(["p", cp_pub])]).finalize(driver.keys))
    answer: Event = await driver.next(4)
    assert answer.author().to_hex() == cp_pub
    text = nip04_decrypt(driver.keys.secret_key(), cp_keys.public_key(), answer.content())
    assert "300 sat per kWh" in text


async def test_payer_can_stop_and_get_refund_link_by_dm(
        nostr_app: tuple[StromApp, Keys], driver: Driver, http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    cp_pub = cp_keys.public_key().to_hex()
    answer = await zap_answer(app, http, driver, cp_pub)
    await dev_pay(app, http, answer["pr"])
    await driver.next(9735)
    assert app.services is not None and app.services.sessions is not None
    sessions = app.services.sessions
    session = (await eventually(lambda: sessions.repo.list(cp_id=CP),
                                lambda found: found[0].state == State.CHARGING
                                and found[0].consumed_msat > 0))[0]
    stranger = Driver(app.relay.url)
    await stranger.start()
    try:
        assert "Only the payer" in await dm17(stranger, cp_pub, "stop")
        assert "Nothing to refund" in await dm17(stranger, cp_pub, "refund")
    finally:
        await stranger.client.close()
    assert (await app.services.sessions.repo.get(session.id)).state == State.CHARGING

    stopped = await dm17(driver, cp_pub, "stop", answer_starts="Stopped.")
    session = await app.services.sessions.repo.get(session.id)
    assert session.state == State.STOPPED and 0 < session.refundable_msat < AMOUNT
    link = stopped.split("lightning:")[1].split()[0]
    assert lnurl_decode(link).endswith(f"/lnurlw/{session.token}")
    refund = await dm17(driver, cp_pub, "refund", answer_starts="Your refund")
    assert f"{session.refundable_msat // 1000:,} sat" in refund


async def test_a_second_zap_from_the_payer_tops_up_the_running_session(
        nostr_app: tuple[StromApp, Keys], driver: Driver, http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    cp_pub = cp_keys.public_key().to_hex()
    sessions = app.services.sessions
    for n in range(2):
        # A new zap is a new request (a client signs one per zap): two identical requests in
        # the same second would be one event, used once.
        request = zap_request(driver.keys, cp_pub, app.relay.url, content=f"zap {n}")
        answer = (await http.get(f"/lnurlp/{CP}/callback",
                                 params={"amount": AMOUNT, "nostr": request})).json()
        await dev_pay(app, http, answer["pr"])
        found = await eventually(lambda: sessions.repo.list(cp_id=CP),
                                 lambda s: s and s[0].state == State.CHARGING)
    assert len(found) == 1, "the second zap must not start a second session"
    session = await eventually(lambda: sessions.repo.get(found[0].id),
                               lambda s: s.paid_msat == 2 * AMOUNT)
    assert session.payer_pubkey == driver.pubkey


async def test_a_dm_stop_while_starting_says_it_is_applied_then_sends_the_refund(
        data_dir: Path) -> None:
    """The zapper DMs `stop` before the charger has started: no refund link yet (the charger
    may still start); it starts late, is stopped, and the DM then brings the refund."""
    async with keyed_strom(data_dir) as (app, cp_keys), \
            httpx.AsyncClient(base_url=app.http_url, timeout=20) as http:
        assert app.services is not None and app.services.central_system is not None
        charger = FieldCharger(CP, app.services.central_system.url)  # starts when told
        await charger.connect()
        await cp_available(app)
        driver = Driver(app.relay.url)
        await driver.start()
        try:
            cp_pub = cp_keys.public_key().to_hex()
            await dev_pay(app, http, (await zap_answer(app, http, driver, cp_pub))["pr"])
            await eventually(lambda: _value(len(charger.start_requests)), lambda n: n == 1)
            held = await dm17(driver, cp_pub, "stop", answer_starts="Your stop is being applied")
            assert "lightning:" not in held
            assert (await dm17(driver, cp_pub, "refund")).startswith("Your stop is being applied")
            tx, status = await charger.start(charger.start_requests[0])
            assert status == "Invalid"
            await eventually(lambda: _value(charger.stop_requests.count(tx)), lambda n: n >= 1)
            await charger.stop(tx, 0)
            stopped = await driver.dm("Stopped (stopped by the driver)", sender=cp_pub)
            assert f"Refund of {AMOUNT // 1000:,} sat: lightning:" in stopped
        finally:
            await driver.client.close()
            await charger.close()


async def _value(value: int) -> int:
    return value
