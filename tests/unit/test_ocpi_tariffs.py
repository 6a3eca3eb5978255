"""strom's prices as OCPI Tariffs: BTC exact to the msat, or EUR at the BTC/EUR feed's rate
(never without a fresh one); a dynamic price one element per published slot, restricted to its
hours, valid until the last slot ends."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from strom.config import OcpiSettings
from strom.ocpi.currency import IN_BTC, MSAT_PER_BTC, Conversion, Currency, btc, recorded
from strom.ocpi.tariffs import ocpi_tariff
from strom.tariffs.dynamic import PriceSlot
from strom.tariffs.model import Tariff
from strom.tariffs.pricing import BtcRate, TariffService
from tests.conftest import loopback_outbound
from tests.unit.feed_server import Clock, FeedServer, until
from tests.unit.test_dynamic_tariffs import cp


def test_a_static_tariff_in_btc() -> None:
    tariff = Tariff(price_msat_per_kwh=123_456_789, session_fee_msat=1_000,
                    price_msat_per_minute=7)
    body = ocpi_tariff("cp-1", tariff, [], OcpiSettings(), last_updated="2026-01-01T00:00:00Z")
    assert body["currency"] == "BTC" and body["id"] == "cp-1" and "end_date_time" not in body
    parts = {c["type"]: c["price"] for e in body["elements"] for c in e["price_components"]}
    assert round(parts["ENERGY"] * MSAT_PER_BTC) == 123_456_789
    assert round(parts["FLAT"] * MSAT_PER_BTC) == 1_000
    assert round(parts["TIME"] * MSAT_PER_BTC) == 7 * 60  # per hour
    assert all(round(btc(m) * MSAT_PER_BTC) == m for m in (1, 999, 10**11 + 1, 2**40))


def test_a_dynamic_tariff_has_one_element_per_slot_and_ends_with_the_last() -> None:
    start = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    slots = [PriceSlot(start + timedelta(hours=h), start + timedelta(hours=h + 1), 80.0,
                       100_000 + h, None) for h in range(3)]
    tariff = Tariff(price_msat_per_kwh=100_000, source="dynamic",
                    valid_until="2026-03-01T23:00:00.000Z")
    body = ocpi_tariff("cp-1", tariff, slots, OcpiSettings(), last_updated="x")
    energy = [(e["restrictions"], c["price"]) for e in body["elements"]
              for c in e["price_components"] if c["type"] == "ENERGY"]
    assert [round(p * MSAT_PER_BTC) for _, p in energy] == [100_000, 100_001, 100_002]
    assert energy[0][0] == {"start_date": "2026-03-01", "end_date": "2026-03-02",
                            "start_time": "22:00", "end_time": "23:00"}  # end_date exclusive
    assert energy[1][0] == {"start_date": "2026-03-01", "end_date": "2026-03-02",
                            "start_time": "23:00", "end_time": "00:00"}  # crosses midnight
    assert energy[2][0]["start_date"] == "2026-03-02" and energy[2][0]["start_time"] == "00:00"
    assert body["end_date_time"] == "2026-03-02T01:00:00.000Z"


def test_a_tariff_in_eur_at_the_feeds_rate_names_the_rate() -> None:
    tariff = Tariff(price_msat_per_kwh=300_000, session_fee_msat=1_000_000,
                    price_msat_per_minute=1_000)
    money = Conversion("EUR", 57931.0, "2024-05-14T10:30:00.000Z")
    body = ocpi_tariff("cp-1", tariff, [], OcpiSettings(), last_updated="x", money=money)
    assert body["currency"] == "EUR"
    assert (body["strom_eur_per_btc"], body["strom_rate_at"]) == (57931.0, money.rate_at)
    parts = {c["type"]: c["price"] for e in body["elements"] for c in e["price_components"]}
    # 300,000 msat = 0.000003 BTC; × 57,931 EUR/BTC = 0.173793 EUR, OCPI's 4 decimals.
    assert parts == {"ENERGY": 0.1738, "FLAT": 0.5793, "TIME": 0.0348}
    assert "strom_eur_per_btc" not in ocpi_tariff("cp-1", tariff, [], OcpiSettings(),
                                                  last_updated="x")


def test_eur_wanted_without_a_fresh_rate_publishes_btc_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    rates: list[BtcRate | None] = [None, None, BtcRate(56188.0, datetime(2026, 1, 1, tzinfo=UTC))]
    currency = Currency(OcpiSettings(currency="EUR"), lambda: rates.pop(0))
    with caplog.at_level(logging.INFO, logger="strom.ocpi.currency"):
        assert currency.now() is IN_BTC and currency.now() is IN_BTC
        assert currency.now() == Conversion("EUR", 56188.0, "2026-01-01T00:00:00.000Z")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and "published in BTC" in said[0] and "EUR" in said[1]  # once each
    assert Currency(OcpiSettings(), lambda: rates[0]).now() is IN_BTC  # BTC: no rate asked
    assert recorded(None, None) is IN_BTC
    assert recorded(57931.0, "t").amount(10**11) == 57931.0


async def test_a_static_tariff_follows_the_btc_rate_alone_and_lets_it_go_stale() -> None:
    clock = Clock()
    async with FeedServer() as feeds:
        feeds.recorded("spot", "awattar_de_2024-05-14.json")
        feeds.recorded("btc", "coingecko_btc_eur.json")
        service = TariffService(feeds.settings(mode="static"), clock=clock,
                                outbound=loopback_outbound(), follow_btc=True)
        try:
            assert service.btc_rate() is None
            await service.start()
            await until(lambda: service.btc_rate() is not None)
            assert service.btc_rate() == BtcRate(57931.0, clock.now)
            assert "spot" not in feeds.hits  # a static price needs no spot prices
            assert service.current(cp()).source == "static"
            clock.advance(seconds=7201)  # [tariff.feeds] max_age_seconds
            assert service.btc_rate() is None
        finally:
            await service.close()
