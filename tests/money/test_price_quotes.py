"""Price quotes honour what they promise and no more (issue 28), over LNURL-pay on HTTP.

A local feed server serves a spot market that jumps about 13x at 11:00 UTC; the tariff
service runs on a settable clock, so a quote's lifetime and its slot's end pass in no time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import bolt11
import pytest

from strom.app import StromApp
from strom.sessions.use_cases import UseCases
from strom.tariffs.pricing import TariffService
from tests.conftest import free_settings
from tests.money.conftest import CP, World
from tests.unit.feed_server import DAY, Clock, FeedServer, expected_msat

BTC = 57931.0
CHEAP, DEAR = 20.0, 2000.0  # EUR/MWh before and from 11:00 UTC
CHEAP_MSAT, DEAR_MSAT = expected_msat(CHEAP, BTC), expected_msat(DEAR, BTC)


def spot_day() -> str:
    """Hourly spot prices on the recorded day: cheap until 11:00, then dear."""
    return json.dumps([{"start": (DAY + timedelta(hours=h)).isoformat(),
                        "end": (DAY + timedelta(hours=h + 1)).isoformat(),
                        "price": CHEAP if h < 11 else DEAR} for h in range(24)])


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        server.answer("spot", spot_day())
        server.recorded("btc", "coingecko_btc_eur.json")
        yield server


class Market:
    """The world's charger priced by the local feeds, on a clock the test turns."""

    def __init__(self, world: World, feeds: FeedServer, clock: Clock, tariffs: TariffService):
        self.world, self.feeds, self.clock, self.tariffs = world, feeds, clock, tariffs

    async def pay_request(self, target: str = CP) -> dict[str, Any]:
        answer = (await self.world.http.get(f"/lnurlp/{target}")).json()
        assert answer.get("tag") == "payRequest", answer
        return answer

    async def callback(self, pay: dict[str, Any], amount: int = 2_000_000) -> dict[str, Any]:
        # As wallets do (LUD-06): the callback's own query (the quote id) stays.
        answer = await self.world.http.get(f"{pay['callback']}&amount={amount}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def invoiced_tariff(self, answer: dict[str, Any], pay: dict[str, Any]) -> dict:
        """The tariff locked in the session of a callback's invoice (which the wallet accepts)."""
        assert "pr" in answer, answer
        invoice = bolt11.decode(answer["pr"])
        # What a wallet checks (LUD-06): the invoice commits to the metadata it showed.
        assert invoice.description_hash == hashlib.sha256(pay["metadata"].encode()).hexdigest()
        session = await self.world.session(answer["successAction"]["url"])
        return session["tariff"]

    async def btc_falls(self) -> None:
        self.feeds.recorded("btc", "coingecko_btc_eur_later.json")  # 56,188 EUR/BTC
        await self.tariffs.refresh()

    def admin(self) -> dict[str, str]:
        return self.world.admin


async def market_of(world: World, feeds: FeedServer, clock: Clock, *,
                    quote_seconds: float = 600, **settings: Any) -> Market:
    assert world.app.services is not None
    tariffs = TariffService(feeds.settings(feeds={"spot_provider": "json"}, **settings),
                            world.app.services.db, clock=clock, quote_seconds=quote_seconds,
                            outbound=world.app.services.outbound)
    await tariffs.refresh()
    svc = world.app.services
    svc.tariffs = tariffs
    # Checkout prices through the tariffs it was built with: build the use cases anew.
    svc.use_cases = UseCases.build(
        settings=svc.settings, charge_points=svc.charge_points, sessions=svc.sessions,
        tariffs=tariffs, refunds=svc.refunds, address_refunds=svc.address_refunds,
        zaps=svc.zaps, keyring=svc.keyring, db=svc.db, bus=svc.bus, chargers=svc.chargers)
    return Market(world, feeds, clock, tariffs)


@pytest.fixture
async def market(world: World, feeds: FeedServer) -> AsyncIterator[Market]:
    the_market = await market_of(world, feeds, Clock())
    yield the_market
    await the_market.tariffs.close()


def text_of(pay: dict[str, Any]) -> str:
    return dict(json.loads(pay["metadata"]))["text/plain"]


async def test_a_quote_lasts_no_longer_than_invoice_expiry(world: World,
                                                          feeds: FeedServer) -> None:
    """Case 1: with invoice_expiry = 60, a quote is not honoured at +90 s."""
    market = await market_of(world, feeds, Clock(), quote_seconds=60)
    try:
        pay = await market.pay_request()
        market.clock.advance(seconds=90)
        await market.btc_falls()  # the price moved meanwhile
        refused = await market.callback(pay)
        assert refused["status"] == "ERROR", refused
        assert "price changed" in refused["reason"] and "Scan the QR code again" in refused["reason"]
        # Within its lifetime the quote holds, and its invoice lives no longer than it.
        pay = await market.pay_request()
        market.clock.advance(seconds=20)
        answer = await market.callback(pay)
        tariff = await market.invoiced_tariff(answer, pay)
        assert tariff["price_msat_per_kwh"] == expected_msat(CHEAP, 56188)
        assert bolt11.decode(answer["pr"]).expiry == 40
    finally:
        await market.tariffs.close()


async def test_the_app_holds_quotes_for_invoice_expiry(tmp_path: Path) -> None:
    async with StromApp(free_settings(lightning={"invoice_expiry": 60}), tmp_path / "d") as app:
        assert app.services is not None and app.services.tariffs is not None
        await app.services.charge_points.add("x", name="X", lat=0, lon=0)
        cp = await app.services.charge_points.get("x")
        assert cp is not None
        _, quote_id = app.services.tariffs.quote(cp)
        assert 59 <= app.services.tariffs.quoted(cp, quote_id).seconds_left <= 60


async def test_a_quote_ends_with_its_price_slot(market: Market) -> None:
    """Case 2: a quote shown "until 11:00 UTC" is not honoured at 11:00:08."""
    market.clock.now = DAY + timedelta(hours=10, minutes=59, seconds=40)
    pay = await market.pay_request()
    assert "until 11:00 UTC" in text_of(pay)
    # Made 20 s before the slot ends, an invoice is payable 30 s, not 10 min, at the old price.
    answer = await market.callback(pay)
    assert (await market.invoiced_tariff(answer, pay))["price_msat_per_kwh"] == CHEAP_MSAT
    assert bolt11.decode(answer["pr"]).expiry == 30

    pay = await market.pay_request()
    market.clock.advance(seconds=28)  # 11:00:08: the dear slot
    refused = await market.callback(pay)
    assert refused["status"] == "ERROR" and "price changed" in refused["reason"]
    assert "4,416.461 sat per kWh" in refused["reason"] and DEAR_MSAT == 4_416_461
    pay = await market.pay_request()
    tariff = await market.invoiced_tariff(await market.callback(pay), pay)
    assert tariff["price_msat_per_kwh"] == DEAR_MSAT


async def test_a_fallback_quote_ends_when_the_feeds_recover(world: World,
                                                            feeds: FeedServer) -> None:
    """Case 3: a quote of the static fallback price ends when the market price is back."""
    feeds.answer("spot", "upstream down", 500)
    market = await market_of(world, feeds, Clock())
    try:
        pay = await market.pay_request()
        assert "fixed price" in text_of(pay)
        feeds.answer("spot", spot_day())
        await market.tariffs.refresh()
        refused = await market.callback(pay)
        assert refused["status"] == "ERROR" and "price changed" in refused["reason"]
        pay = await market.pay_request()
        tariff = await market.invoiced_tariff(await market.callback(pay), pay)
        assert (tariff["source"], tariff["price_msat_per_kwh"]) == ("dynamic", CHEAP_MSAT)
    finally:
        await market.tariffs.close()


async def test_a_quote_serves_one_invoice(market: Market) -> None:
    """Case 4: three callbacks at once with one quote get one invoice at the quoted price."""
    pay = await market.pay_request()
    await market.btc_falls()
    answers = await asyncio.gather(*(market.callback(pay) for _ in range(3)))
    invoiced = [a for a in answers if "pr" in a]
    assert len(invoiced) == 1, answers
    assert (await market.invoiced_tariff(invoiced[0], pay))["price_msat_per_kwh"] == CHEAP_MSAT
    assert all("price changed" in a["reason"] for a in answers if "pr" not in a)
    market.clock.advance(seconds=50)
    again = await market.callback(pay)
    assert again["status"] == "ERROR" and "price changed" in again["reason"]


async def test_a_used_quote_at_an_unchanged_price_makes_another_invoice(market: Market) -> None:
    """A wallet that asks twice while the price stands gets a fresh quote at that price."""
    pay = await market.pay_request()
    first, second = await market.callback(pay), await market.callback(pay)
    assert first["pr"] != second["pr"]
    for answer in (first, second):
        assert (await market.invoiced_tariff(answer, pay))["price_msat_per_kwh"] == CHEAP_MSAT


async def test_operator_price_change_and_cancel_end_open_quotes(market: Market) -> None:
    """Case 5: a raised price ends open quotes; so does "cancel open quotes"."""
    http = market.world.http
    pay = await market.pay_request()
    raised = await http.put(f"/api/v1/tariffs/{CP}", json={"price_msat_per_kwh": 900_000},
                            headers=market.admin())
    assert raised.status_code == 200, raised.text
    refused = await market.callback(pay)
    assert refused["status"] == "ERROR" and "900 sat per kWh" in refused["reason"]
    assert (await http.delete(f"/api/v1/tariffs/{CP}", headers=market.admin())).status_code == 200

    pay = await market.pay_request()
    await market.btc_falls()
    assert (await http.post("/api/v1/tariffs/quotes/cancel")).status_code == 401
    cancelled = await http.post("/api/v1/tariffs/quotes/cancel", headers=market.admin())
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] >= 1
    refused = await market.callback(pay)
    assert refused["status"] == "ERROR" and "price changed" in refused["reason"]
    pay = await market.pay_request()
    tariff = await market.invoiced_tariff(await market.callback(pay), pay)
    assert tariff["price_msat_per_kwh"] == expected_msat(CHEAP, 56188)


async def test_no_internal_url_reaches_drivers(world: World, feeds: FeedServer) -> None:
    """Case 6: a failing feed's URL is for the operator's eyes only."""
    secret = feeds.url("spot")
    feed_host = secret.split("/")[2]  # 127.0.0.1:port of the feed server
    feeds.answer("spot", "upstream down", 500)
    market = await market_of(world, feeds, Clock())
    http = world.http
    try:
        pay = await market.pay_request()
        session = await world.session(
            (await market.callback(pay))["successAction"]["url"])
        page = (await http.get(f"/cp/{CP}")).text
        public = (await http.get(f"/api/v1/public/charge-points/{CP}")).text
        assert "Market price unavailable" in page and "no spot price fetched yet" in page
        for shown in (pay["metadata"], json.dumps(session), page, public):
            assert feed_host not in shown and "/spot" not in shown
        # What the charger's nostr status event carries about the market (bots/nostr_bots.py).
        assert feed_host not in json.dumps(market.tariffs.status().public_json())
        operator = (await http.get("/api/v1/tariffs", headers=market.admin())).json()
        assert secret in operator["feeds"]["reason"]
    finally:
        await market.tariffs.close()


@pytest.mark.parametrize(("lock", "words"), [
    ("session", "This energy price is locked for your whole session."),
    ("slot", "(slot by slot, this price as a cap)")])
async def test_metadata_and_page_say_how_the_price_holds(world: World, feeds: FeedServer,
                                                        lock: str, words: str) -> None:
    market = await market_of(world, feeds, Clock(), price_lock=lock)
    try:
        pay = await market.pay_request()
        page = (await world.http.get(f"/cp/{CP}")).text
        assert words in text_of(pay) and words in page
        tariff = await market.invoiced_tariff(await market.callback(pay), pay)
        assert tariff["lock"] == lock
        assert (tariff["later_prices"] is not None) == (lock == "slot")
    finally:
        await market.tariffs.close()
