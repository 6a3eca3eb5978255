"""Issue "Nostr", must show: a nostr user with their own keys finds the charger by geohash,
zaps it through its lightning address, sees the receipt, gets the session link by DM, stops
by DM and receives the refund at their own lightning address; a stranger's stop changes
nothing; in external mode a forged receipt starts nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import bolt11
import httpx
from nostr_sdk import (
    EventBuilder,
    Filter,
    Keys,
    Kind,
    Tag,
    Timestamp,
    uniffi_set_event_loop,
)

from strom.app import StromApp
from strom.sessions.model import State
from strom.simulator.charge_point import SimulatedChargePoint
from tests.conftest import free_settings
from tests.doubles.edges import make_invoice
from tests.doubles.lightning_address import AddressProvider
from tests.nostr.conftest import CP, Driver, register
from tests.nostr.test_zaps_and_dms import dev_pay, dm17, zap_request
from tests.polling import eventually


async def test_find_zap_follow_stop_and_get_refunded(
        nostr_app: tuple[StromApp, Keys], driver: Driver, http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    async with AddressProvider("alice").running() as wallet:
        profile = EventBuilder(Kind(0), json.dumps({"name": "alice", "lud16": wallet.address}))
        assert await driver.client.publish(profile.finalize(driver.keys))

        # Find chargers near Zurich by geohash prefix. A status change is published within
        # half a second (a burst of changes is one event), so the relay may lag the store.
        near = Filter.from_json('{"kinds":[30333],"#g":["u0qj"]}')
        found = await eventually(lambda: driver.client.fetch([near]), lambda events: bool(events)
                                 and json.loads(events[0].content())["status"] == "Available")
        assert [e.author().to_hex() for e in found] == [cp_keys.public_key().to_hex()]
        status = json.loads(found[0].content())

        # Zap through the lightning address, as a nostr client does.
        user, _, host = status["lud16"].partition("@")
        pay = (await http.get(f"http://{host}/.well-known/lnurlp/{user}")).json()
        assert pay["allowsNostr"] and pay["nostrPubkey"] == cp_keys.public_key().to_hex()
        request = zap_request(driver.keys, pay["nostrPubkey"], app.relay.url, amount=5_000_000)
        invoice = (await http.get(pay["callback"], params={"amount": 5_000_000,
                                                           "nostr": request})).json()["pr"]
        await dev_pay(app, http, invoice)
        receipt = await driver.next(9735)
        assert receipt.author().to_hex() == pay["nostrPubkey"]

        started = await driver.dm("Charging started")
        session_url = started.split("Follow it at ")[1].split()[0]
        session = (await http.get(session_url, headers={"Accept": "application/json"})).json()
        assert session["state"] == "charging" and session["paid_msat"] == 5_000_000

        stranger = Driver(app.relay.url)
        await stranger.start()
        try:
            refused = await dm17(stranger, pay["nostrPubkey"], "stop")
            assert "Only the payer" in refused
        finally:
            await stranger.client.close()
        assert (await app.services.sessions.repo.by_token(session_url.rsplit("/", 1)[1])
                ).state == State.CHARGING

        await dm17(driver, pay["nostrPubkey"], "stop", answer_starts="Stopped.")
        told = await driver.dm("Stopped (")
        assert wallet.address in told
        token = session_url.rsplit("/", 1)[1]
        done = await eventually(lambda: app.services.sessions.repo.by_token(token),
                                lambda s: s.state == State.REFUNDED)
        assert done.refunded_msat > 0 and done.refundable_msat == 0
        # The refund is the invoice alice's provider issued, paid once by strom's wallet.
        assert len(wallet.issued) == 1
        assert bolt11.decode(wallet.issued[0]).amount_msat == done.refunded_msat
        payments = await app.services.db.fetchall("SELECT status FROM ln_payments")
        assert [p["status"] for p in payments] == ["succeeded"]


async def test_external_mode_accepts_only_the_providers_receipts(data_dir: Path) -> None:
    uniffi_set_event_loop(asyncio.get_running_loop())
    provider_keys = Keys.generate()
    async with AddressProvider("ext", provider_keys.public_key().to_hex()).running() as provider:
        cp_keys = await register(data_dir)
        settings = free_settings(charge_points={CP: {"external_lnurl": provider.address}})
        async with StromApp(settings, data_dir) as app:
            charger = SimulatedChargePoint(CP, app.services.central_system.url, connectors=2,
                                           meter_interval=0.2, speed=60.0)
            await charger.start()
            await eventually(lambda: app.services.charge_points.get(CP),
                             lambda cp: cp is not None and cp.status == "Available")
            zapper = Driver(app.relay.url)
            await zapper.start()
            try:
                request = zap_request(zapper.keys, cp_keys.public_key().to_hex(), app.relay.url,
                                      amount=3_000_000)
                invoice = bolt11.decode(make_provider_invoice(provider, request))

                def receipt(signer: Keys, pr: str) -> object:
                    tags = [["p", cp_keys.public_key().to_hex()], ["bolt11", pr],
                            ["description", request], ["P", zapper.pubkey]]
                    return (EventBuilder(Kind(9735), "").tags([Tag.parse(t) for t in tags])
                            .custom_created_at(Timestamp.now()).finalize(signer))

                forged = receipt(Keys.generate(), provider.issued[-1])
                assert await zapper.client.publish(forged)
                other_amount = make_provider_invoice(provider, request, amount=1_000_000)
                assert await zapper.client.publish(receipt(provider_keys, other_amount))
                await asyncio.sleep(1.0)
                assert await app.services.sessions.repo.list(cp_id=CP) == []

                good = receipt(provider_keys, provider.issued[0])
                assert await zapper.client.publish(good)
                sessions = await eventually(lambda: app.services.sessions.repo.list(cp_id=CP),
                                            lambda found: len(found) == 1)
                assert sessions[0].payer_pubkey == zapper.pubkey
                assert sessions[0].paid_msat == int(invoice.amount_msat)
                # The same receipt again (another relay, a restart) starts nothing more.
                await zapper.client.publish(good)
                await asyncio.sleep(0.5)
                assert len(await app.services.sessions.repo.list(cp_id=CP)) == 1
            finally:
                await zapper.client.close()
                await charger.close()


def make_provider_invoice(provider: AddressProvider, request: str,
                          amount: int = 3_000_000) -> str:
    """What the provider's callback would issue for this zap request."""
    invoice = make_invoice(amount, description_hash=hashlib.sha256(request.encode()).digest())
    provider.issued.append(invoice)
    return invoice
