"""Checkout and top-up as the interfaces call them: typed orders in, invoices or refusals out.

Real SQLite, real session and tariff services, a real key file; the charger and the wallet are
the doubles at the edges. The HTTP and nostr paths over them are in tests/money and tests/nostr.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import bolt11
import pytest
from nostr_sdk import EventBuilder, Keys, Kind, Tag, Timestamp

from strom.config import Settings
from strom.keys import KeyRing, ensure_cp_key
from strom.lightning.wallet import WalletError
from strom.lnurl import pay as lud06
from strom.sessions.checkout import (
    AmountRefused,
    ChargerBusy,
    Checkout,
    Order,
    PaidElsewhere,
    PaymentsUnavailable,
    PriceChanged,
    UnknownCharger,
    ZapRefused,
)
from strom.sessions.model import State
from strom.sessions.reservations import Reservations
from strom.sessions.topup import TopUpRefused, TopUps, TopUpToken, UnknownTopUp
from strom.store.db import Database
from strom.store.zaps import ZapRepository
from strom.tariffs.pricing import TariffService
from tests.conftest import free_settings, loopback_outbound
from tests.doubles.edges import make_invoice
from tests.unit.sessions_support import Harness, harness

AMOUNT = 2_000_000


@dataclass
class Shop:
    h: Harness
    checkout: Checkout
    topups: TopUps
    tariffs: TariffService
    zaps: ZapRepository
    charger_pubkey: str

    def zap_request(self, sender: Keys, *, amount: int = AMOUNT, age: int = 0) -> str:
        tags = [["p", self.charger_pubkey], ["relays", "wss://relay.example"],
                ["amount", str(amount)]]
        # A client signs a new request for every zap: same second, still another event id.
        builder = EventBuilder(Kind(9734), f"for the road {secrets.token_hex(4)}").tags(
            [Tag.parse(t) for t in tags])
        if age:
            builder = builder.custom_created_at(Timestamp.from_secs(int(time.time()) - age))
        return builder.finalize(sender).as_json()


def desk(h: Harness, tariffs: TariffService, settings: Settings) -> Reservations:
    return Reservations(db=h.db, sessions=h.sessions, charge_points=h.cps, tariffs=tariffs,
                        chargers=h.chargers, bus=h.bus, settings=settings)


@pytest.fixture
async def shop(db: Database, tmp_path: Path) -> AsyncIterator[Shop]:
    key_file = tmp_path / "nostr-keys.toml"
    ensure_cp_key(key_file, "cp-1")
    ring = KeyRing(key_file)
    settings = free_settings(http={"public_url": "https://strom.example"})
    tariffs = TariffService(settings.tariff, db, outbound=loopback_outbound())
    zaps = ZapRepository(db)
    async with harness(db) as h:
        checkout = Checkout(charge_points=h.cps, sessions=h.sessions, tariffs=tariffs,
                            zaps=zaps, keyring=ring, settings=settings,
                            reservations=desk(h, tariffs, settings), reads=db.read)
        pubkey = ring.pubkey_hex("cp-1")
        assert pubkey is not None
        yield Shop(h, checkout, TopUps(h.sessions), tariffs, zaps, pubkey)


async def test_a_target_names_a_charger_and_maybe_a_connector(shop: Shop) -> None:
    assert (await shop.checkout.target("cp-1")).connector_id is None
    assert (await shop.checkout.target("cp-1-2")).connector_id == 2
    for unknown in ("cp-1-3", "cp-1-0", "nope", "cp-1-x"):
        with pytest.raises(UnknownCharger, match="unknown charger"):
            await shop.checkout.target(unknown)


async def test_the_offer_states_the_price_and_the_invoice_commits_to_it(shop: Shop,
                                                                       db: Database) -> None:
    offer = await shop.checkout.offer("cp-1-2")
    text, identifier = (entry[1] for entry in json.loads(offer.metadata))
    assert text.startswith("Charge at One (connector 2): ")
    assert identifier == "cp-1-2@strom.example"
    assert offer.nostr_pubkey == shop.charger_pubkey
    invoiced = await shop.checkout.pay(Order("cp-1-2", AMOUNT, quote=offer.quote,
                                             comment="hi"))
    assert not invoiced.for_zap and not invoiced.topped_up
    session = invoiced.pending.session
    assert (session.state, session.connector_id, session.comment) == \
        (State.PENDING_PAYMENT, 2, "hi")
    assert session.payer_pubkey is None
    assert bolt11.decode(invoiced.pending.bolt11).description_hash == \
        lud06.description_hash(offer.metadata).hex()
    # Committed before the invoice is handed out: another connection (another process, or
    # this one after a crash) finds the session and its invoice.
    with contextlib.closing(sqlite3.connect(db.path)) as other:
        row = other.execute("SELECT s.state FROM session_invoices i JOIN sessions s"
                            " ON s.id = i.session_id WHERE i.payment_hash = ?",
                            (invoiced.pending.payment_hash,)).fetchone()
    assert row == (State.PENDING_PAYMENT.value,)


async def test_amounts_outside_the_tariff_are_refused_with_the_range(shop: Shop) -> None:
    with pytest.raises(AmountRefused, match="below minimum of 1000 sat"):
        await shop.checkout.pay(Order("cp-1", 999_000))
    with pytest.raises(AmountRefused, match="above maximum"):
        await shop.checkout.pay(Order("cp-1", 10**12))


async def test_a_busy_or_offline_charger_is_refused_with_the_reason(shop: Shop) -> None:
    sid = await shop.h.paid_session(connector=1)
    await shop.h.wait_state(sid, State.STARTING)
    with pytest.raises(ChargerBusy, match="connector 1 is charging for another driver. If it "
                                          "is your session"):
        await shop.checkout.pay(Order("cp-1-1", AMOUNT))
    await shop.h.cps.set_connected("cp-1", False)
    shop.h.chargers.connected = False
    with pytest.raises(ChargerBusy, match="offline"):
        await shop.checkout.offer("cp-1")


async def test_a_changed_price_is_refused_once_the_quote_ended(shop: Shop) -> None:
    offer = await shop.checkout.offer("cp-1")
    await shop.checkout.pay(Order("cp-1-1", AMOUNT, quote=offer.quote))  # takes the quote
    # The same quote again: ended; at an unchanged price it is invoiced anew ...
    await shop.checkout.pay(Order("cp-1-2", AMOUNT, quote=offer.quote))
    # ... but not once the operator changed the price the wallet showed.
    offer = await shop.checkout.offer("cp-1")
    await shop.checkout.pay(Order("cp-1", AMOUNT, quote=offer.quote))
    await shop.h.cps.update("cp-1", tariff={"price_msat_per_kwh": 900_000})
    with pytest.raises(PriceChanged, match="The price changed since your wallet loaded it"):
        await shop.checkout.pay(Order("cp-1", AMOUNT, quote=offer.quote))


async def test_a_zap_makes_its_sender_the_payer_once_and_only_while_fresh(shop: Shop) -> None:
    driver = Keys.generate()
    request = shop.zap_request(driver)
    invoiced = await shop.checkout.pay(Order("cp-1", AMOUNT, zap_request=request))
    assert invoiced.for_zap and not invoiced.topped_up
    assert invoiced.pending.session.payer_pubkey == driver.public_key().to_hex()
    stored = await shop.zaps.get(invoiced.pending.payment_hash)
    assert stored is not None and stored.request_json == request
    with pytest.raises(ZapRefused, match="already used"):
        await shop.checkout.pay(Order("cp-1", AMOUNT, zap_request=request))
    with pytest.raises(ZapRefused, match="too old"):
        await shop.checkout.pay(Order("cp-1", AMOUNT, zap_request=shop.zap_request(
            driver, age=3600)))
    with pytest.raises(ZapRefused, match="does not match amount"):
        await shop.checkout.pay(Order("cp-1", AMOUNT, zap_request=shop.zap_request(
            driver, amount=AMOUNT + 1000)))


async def test_a_zap_from_a_charging_payer_tops_up_their_session(shop: Shop) -> None:
    driver = Keys.generate()
    first = await shop.checkout.pay(Order("cp-1", AMOUNT, zap_request=shop.zap_request(driver)))
    shop.h.wallet.settle(first.pending.payment_hash)
    await shop.h.sessions.on_paid(first.pending.payment_hash, AMOUNT)
    await shop.h.wait_state(first.pending.session.id, State.STARTING)
    for n in (1, 2):  # every connector taken: a stranger is refused, the payer is not
        await shop.h.cps.set_connector_status("cp-1", n, "Charging")
    with pytest.raises(ChargerBusy):
        await shop.checkout.pay(Order("cp-1", AMOUNT))
    again = await shop.checkout.pay(Order("cp-1", AMOUNT, zap_request=shop.zap_request(driver)))
    assert again.topped_up and again.pending.session.id == first.pending.session.id


async def test_no_invoice_releases_the_zap_request_for_another_try(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(*args: object, **kwargs: object) -> None:
        raise WalletError("node unreachable")
    request = shop.zap_request(Keys.generate())
    with monkeypatch.context() as patch:
        patch.setattr(shop.h.wallet, "create_invoice", down)
        with pytest.raises(PaymentsUnavailable, match="payments temporarily unavailable"):
            await shop.checkout.pay(Order("cp-1", AMOUNT, zap_request=request))
    # The attempt stays on record as a failed session, with the wallet's reason.
    failed = await shop.h.sessions.list(cp_id="cp-1", state=State.FAILED)
    assert [s.failure_reason for s in failed] == ["no invoice: node unreachable"]
    assert (await shop.checkout.pay(Order("cp-1", AMOUNT, zap_request=request))).for_zap


async def test_a_charger_without_a_key_takes_no_zaps(shop: Shop, db: Database,
                                                     tmp_path: Path) -> None:
    no_keys = Checkout(charge_points=shop.h.cps, sessions=shop.h.sessions, tariffs=shop.tariffs,
                       zaps=shop.zaps, keyring=KeyRing(tmp_path / "none.toml"),
                       settings=free_settings(),
                       reservations=desk(shop.h, shop.tariffs, free_settings()))
    assert (await no_keys.offer("cp-1")).nostr_pubkey is None
    with pytest.raises(ZapRefused, match="does not accept zaps"):
        await no_keys.pay(Order("cp-1", AMOUNT, zap_request=shop.zap_request(Keys.generate())))


async def test_a_top_up_pays_into_a_running_session_only(shop: Shop) -> None:
    sid = await shop.h.paid_session(amount=AMOUNT)
    session = await shop.h.sessions.repo.get(sid)
    assert session is not None
    token = TopUpToken(session.topup_token)
    offer = await shop.topups.offer(token)
    assert (offer.min_msat, offer.max_msat) == \
        (1000, session.tariff.max_prepay_msat - AMOUNT)
    pending = await shop.topups.pay(offer, 500_000)
    assert pending.session.id == sid and pending.preimage is None  # no session link
    # The payer's token opens the top-up only as a legacy link, the view token never.
    await shop.topups.offer(TopUpToken(session.token, legacy=True))
    for wrong in (TopUpToken(session.token), TopUpToken(session.view_token, legacy=True)):
        with pytest.raises(UnknownTopUp):
            await shop.topups.offer(wrong)
    with pytest.raises(TopUpRefused, match="above maximum"):
        await shop.topups.pay(offer, session.tariff.max_prepay_msat)
    await shop.h.sessions.stop_and_wait(sid, "test")
    with pytest.raises(TopUpRefused, match="a top-up needs a running session"):
        await shop.topups.pay(await shop.topups.offer(token), 500_000)


async def test_a_zap_paid_elsewhere_starts_one_session_for_its_sender(shop: Shop) -> None:
    invoice = make_invoice(AMOUNT)
    paid = PaidElsewhere("cp-1", invoice, bolt11.decode(invoice).payment_hash, AMOUNT, "ab" * 32)
    session = await shop.checkout.paid_elsewhere(paid)
    assert session is not None and (session.payer_pubkey, session.paid_msat) == ("ab" * 32, AMOUNT)
    assert session.state in (State.PAID, State.STARTING)
    assert await shop.checkout.paid_elsewhere(paid) is None  # the same receipt again
    assert await shop.checkout.paid_elsewhere(replace(paid, cp_id="gone")) is None
