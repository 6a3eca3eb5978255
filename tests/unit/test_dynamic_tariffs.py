"""Dynamic tariffs: feeds over real local HTTP (recorded formats), formula, fallback, cache, schedule."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.config import ConfigError, TariffSettings, load_settings
from strom.store.charge_points import ChargerRecord
from strom.store.db import Database
from strom.tariffs.dynamic import energy_price, schedule_lines
from strom.tariffs.feeds import FeedError, parse_awattar, parse_btc, parse_spot_csv, parse_spot_json
from strom.tariffs.model import Tariff, describe
from strom.tariffs.pricing import TariffService
from strom.tariffs.quotes import QuoteBook
from tests.conftest import loopback_outbound
from tests.unit.feed_server import (
    DATA,
    DAY,
    Clock,
    FeedServer,
    expected_msat,
    recorded,
    until,
)

SPOT_AT_1030 = 38.64  # the recorded 10:00-11:00 UTC price
BTC = 57931.0


def cp(tariff: dict | None = None, cp_id: str = "cp-1") -> ChargerRecord:
    return ChargerRecord(id=cp_id, name="One", lat=0, lon=0, num_connectors=1, password_hash=None,
                       tariff=tariff or {}, vendor=None, model=None, serial_number=None,
                       firmware=None, connected=True, last_seen=None, booted_at=None,
                       created_at="")


@pytest.fixture
async def feeds() -> FeedServer:
    async with FeedServer() as server:
        server.recorded("spot", "awattar_de_2024-05-14.json")
        server.recorded("btc", "coingecko_btc_eur.json")
        yield server


# --- parsing recorded formats ------------------------------------------------------------------

def test_awattar_recorded_day_parses() -> None:
    slots = parse_awattar(recorded("awattar_de_2024-05-14.json"))
    assert len(slots) == 24
    assert slots[0].start == DAY and slots[0].end == DAY + timedelta(hours=1)
    assert slots[0].eur_per_mwh == 78.41
    assert slots[10].eur_per_mwh == SPOT_AT_1030
    assert min(s.eur_per_mwh for s in slots) == -2.35  # negative prices are real
    assert slots[-1].end == DAY + timedelta(days=1)


def test_generic_csv_and_json_give_the_same_slots() -> None:
    from_awattar = parse_awattar(recorded("awattar_de_2024-05-14.json"))
    from_csv = parse_spot_csv(recorded("spot_2024-05-14.csv"))
    as_json = json.dumps([{"start": int(s.start.timestamp()), "end": int(s.end.timestamp()),
                           "price": s.eur_per_mwh} for s in from_awattar]).encode()
    semicolons = recorded("spot_2024-05-14.csv").replace(b",", b";")
    assert from_csv == from_awattar == parse_spot_json(as_json) == parse_spot_csv(semicolons)


@pytest.mark.parametrize(("file", "path", "value"), [
    ("coingecko_btc_eur.json", "bitcoin.eur", 57931.0),
    ("coinbase_btc_rates.json", "data.rates.EUR", 58210.35),
    ("kraken_ticker_xbteur.json", "result.XXBTZEUR.c.0", 57935.2),
])
def test_btc_price_by_json_path(file: str, path: str, value: float) -> None:
    assert parse_btc(recorded(file), path) == value


@pytest.mark.parametrize(("parse", "data", "needle"), [
    (parse_awattar, recorded("awattar_broken.json"), "not valid JSON"),
    (parse_awattar, b'{"object":"list","data":[]}', "has no prices"),
    (parse_awattar, b'{"error":"rate limited"}', "no \"data\" list"),
    (parse_awattar, b'{"data":[{"start_timestamp":0,"end_timestamp":3600000,'
                    b'"marketprice":4.2,"unit":"Eur/kWh"}]}', "expected Eur/MWh"),
    (parse_awattar, b'{"data":[{"start_timestamp":0,"end_timestamp":3600000,'
                    b'"marketprice":"cheap","unit":"Eur/MWh"}]}', "not a number"),
    (parse_awattar, b'{"data":[{"start_timestamp":0,"end_timestamp":3600000,'
                    b'"marketprice":99999,"unit":"Eur/MWh"}]}', "implausible"),
    (parse_spot_json, b'[{"start":0,"end":7200,"price":1},{"start":3600,"end":9000,"price":2}]',
     "overlap"),
    (parse_spot_json, b'[{"start":7200,"end":0,"price":1}]', "ends before it starts"),
    (parse_spot_json, b'[{"start":"yesterday","end":0,"price":1}]', "not a time"),
    (parse_spot_csv, b"from,to,eur\n1,2,3\n", "needs a header"),
    (parse_spot_csv, b"start,end,price\n2024-05-14T00:00Z,2024-05-14T01:00Z,\n", "has no price"),
    (lambda d: parse_btc(d, "bitcoin.usd"), recorded("coingecko_btc_eur.json"), "no value at"),
    (lambda d: parse_btc(d, "bitcoin.eur"), b'{"bitcoin":{"eur":0}}', "not positive"),
    (lambda d: parse_btc(d, "bitcoin.eur"), b'{"bitcoin":{"eur":true}}', "not a number"),
])
def test_bad_feeds_fail_with_one_line(parse, data: bytes, needle: str) -> None:
    with pytest.raises(FeedError) as info:
        parse(data)
    assert needle in str(info.value) and "\n" not in str(info.value)


# --- the formula -------------------------------------------------------------------------------

def test_formula_markup_fixed_tax_and_conversion() -> None:
    settings = TariffSettings.model_validate(
        {"dynamic": {"markup": 1.1, "fixed_eur_per_kwh": 0.15, "tax_percent": 19}})
    # (100/1000 * 1.1 + 0.15) * 1.19 = 0.3094 EUR/kWh; at 50,000 EUR/BTC = 618,800 msat.
    price, bound, eur = energy_price(100.0, 50_000.0, settings)
    assert (price, bound) == (618_800, None)
    assert eur == pytest.approx(0.3094)
    assert energy_price(-2.35, BTC, settings)[0] == expected_msat(-2.35, BTC, markup=1.1)


def test_floor_and_ceiling_bound_the_price() -> None:
    settings = TariffSettings.model_validate({"dynamic": {
        "fixed_eur_per_kwh": -0.5, "floor_msat_per_kwh": 100_000, "ceiling_msat_per_kwh": 700_000}})
    assert energy_price(10.0, BTC, settings)[:2] == (100_000, "floor")  # negative before floor
    assert energy_price(900.0, BTC, settings)[:2] == (700_000, "ceiling")
    middle = energy_price(700.0, BTC, settings)
    assert middle[1] is None and 100_000 < middle[0] < 700_000


@settings(max_examples=300, deadline=None)
@given(spot=st.floats(-500, 4000), more=st.floats(0, 1000), btc=st.floats(1000, 1e6),
       markup=st.floats(0, 3), fixed=st.floats(-0.2, 0.6), tax=st.floats(0, 30))
def test_price_is_bounded_and_follows_the_spot_price(spot: float, more: float, btc: float,
                                                     markup: float, fixed: float,
                                                     tax: float) -> None:
    tariff = TariffSettings.model_validate({"dynamic": {
        "markup": markup, "fixed_eur_per_kwh": fixed, "tax_percent": tax,
        "floor_msat_per_kwh": 50_000, "ceiling_msat_per_kwh": 2_000_000}})
    low, bound, _ = energy_price(spot, btc, tariff)
    high = energy_price(spot + more, btc, tariff)[0]
    assert 50_000 <= low <= high <= 2_000_000
    assert bound is not None or abs(low - expected_msat(spot, btc, markup=markup, fixed=fixed,
                                                        tax=tax)) <= 1


def test_config_rejects_floor_above_ceiling_and_age_below_interval(tmp_path: Path) -> None:
    path = tmp_path / "strom.toml"
    path.write_text("[tariff.dynamic]\nfloor_msat_per_kwh = 9000000\n")
    with pytest.raises(ConfigError, match="floor_msat_per_kwh must not exceed"):
        load_settings(path, environ={})
    path.write_text("[tariff.feeds]\ninterval_seconds = 600\nmax_age_seconds = 60\n")
    with pytest.raises(ConfigError, match="max_age_seconds must be larger"):
        load_settings(path, environ={})
    assert load_settings(None, environ={}).tariff.mode == "static"


# --- the service over HTTP ---------------------------------------------------------------------

async def test_dynamic_price_from_local_feeds(feeds: FeedServer) -> None:
    service = TariffService(feeds.settings(), clock=Clock(), outbound=loopback_outbound())
    try:
        status = await service.refresh()
        assert not status.fallback and status.spot_age_seconds == 0 and status.btc_eur == BTC
        tariff = service.current(cp())
        assert tariff.source == "dynamic"
        assert tariff.price_msat_per_kwh == expected_msat(SPOT_AT_1030, BTC) == 387_498
        assert tariff.valid_until == "2024-05-14T11:00:00.000Z"
        assert tariff.basis is not None
        assert tariff.basis["spot_eur_per_mwh"] == SPOT_AT_1030 and tariff.basis["btc_eur"] == BTC
        words = describe(tariff)
        assert "387.498 sat per kWh (dynamic: spot 38.64 EUR/MWh at 57,931 EUR/BTC, until 11:00 UTC)" \
            in words
        schedule = service.schedule(cp(), hours=3)
        assert [s.start.hour for s in schedule] == [10, 11, 12, 13]
        assert [s.price_msat_per_kwh for s in schedule] == [
            expected_msat(p, BTC) for p in (38.64, 4.12, -2.35, -0.51)]
        assert schedule_lines(schedule)[0] == "10:00-11:00 UTC 387 sat/kWh"
        # A charger with its own price keeps it, and has no schedule.
        own = service.current(cp({"price_msat_per_kwh": 250_000}))
        assert (own.price_msat_per_kwh, own.source) == (250_000, "static")
        assert service.schedule(cp({"price_msat_per_kwh": 250_000})) == []
        # Other overrides still apply to a dynamic price.
        assert service.current(cp({"session_fee_msat": 5000})).session_fee_msat == 5000
    finally:
        await service.close()


async def test_static_mode_is_unchanged_and_fetches_nothing(feeds: FeedServer) -> None:
    settings = feeds.settings(mode="static")
    service = TariffService(settings, clock=Clock(), outbound=loopback_outbound())
    await service.start()
    await asyncio.sleep(0.2)
    tariff = service.current(cp())
    await service.close()
    assert tariff == Tariff(price_msat_per_kwh=300_000, grace_minutes=30)
    assert feeds.hits == {} and service.schedule(cp()) == []
    assert not service.status().fallback


async def test_file_paths_work_as_feeds(tmp_path: Path) -> None:
    settings = TariffSettings.model_validate({"mode": "dynamic", "feeds": {
        "spot_provider": "csv", "spot_url": str(DATA / "spot_2024-05-14.csv"),
        "btc_url": (DATA / "coinbase_btc_rates.json").as_uri(), "btc_json_path": "data.rates.EUR"}})
    service = TariffService(settings, clock=Clock(), outbound=loopback_outbound())
    status = await service.refresh()
    await service.close()
    assert not status.fallback
    assert service.current(cp()).price_msat_per_kwh == expected_msat(SPOT_AT_1030, 58210.35)
    missing = settings.model_copy(update={"feeds": settings.feeds.model_copy(
        update={"spot_url": str(tmp_path / "nope.csv")})})
    broken = TariffService(missing, clock=Clock(), outbound=loopback_outbound())
    status = await broken.refresh()
    await broken.close()
    assert status.fallback and "cannot read" in (status.spot_error or "")


@pytest.mark.parametrize(("setup", "reason"), [
    (lambda f: f.answer("spot", "upstream down", 500), "no spot price fetched yet (last error: "
                                                        "HTTP 500 from http://127.0.0.1"),
    (lambda f: f.recorded("spot", "awattar_broken.json"), "spot feed is not valid JSON"),
    (lambda f: f.answer("btc", "{}"), "no BTC/EUR rate fetched yet (last error: BTC feed has no "
                                      "value at 'bitcoin.eur')"),
])
async def test_broken_feed_falls_back_with_reason(feeds: FeedServer, setup, reason: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    setup(feeds)
    service = TariffService(feeds.settings(), clock=Clock(), outbound=loopback_outbound())
    with caplog.at_level(logging.WARNING, logger="strom.tariffs.pricing"):
        status = await service.refresh()
    await service.close()
    assert status.fallback and reason in (status.reason or "")
    tariff = service.current(cp())
    assert (tariff.price_msat_per_kwh, tariff.source) == (300_000, "static")
    # Drivers see why, but not the feed's error: it may name an internal URL or path.
    assert tariff.basis is not None and tariff.basis["fallback"] == status.public_reason
    assert status.public_reason is not None and status.public_reason in status.reason \
        and "error" not in status.public_reason
    assert status.public_json()["reason"] == status.public_reason
    assert "fixed price: " in describe(tariff)
    assert service.schedule(cp()) == []
    assert any("falls back to the static price" in r.message for r in caplog.records)


async def test_stale_feed_data_falls_back(feeds: FeedServer) -> None:
    clock = Clock()
    clock.advance(days=2)  # the feed still serves the recorded day: nothing for now
    service = TariffService(feeds.settings(), clock=clock, outbound=loopback_outbound())
    status = await service.refresh()
    await service.close()
    assert status.fallback
    assert status.reason == "spot feed has no price for now (its prices end 2024-05-15T00:00 UTC)"


async def test_failing_feed_is_used_until_max_age_then_falls_back(feeds: FeedServer) -> None:
    clock = Clock()
    service = TariffService(feeds.settings(), clock=clock, outbound=loopback_outbound())
    try:
        await service.refresh()
        feeds.answer("spot", "bad gateway", 502)
        clock.advance(minutes=30)
        status = await service.refresh()
        # Within max_age the last good prices still apply (now the 11:00 slot's), and the
        # error is visible meanwhile.
        assert not status.fallback and status.spot_error and "HTTP 502" in status.spot_error
        assert status.spot_age_seconds == 1800
        assert service.current(cp()).price_msat_per_kwh == expected_msat(4.12, BTC)
        clock.advance(hours=1, minutes=31)  # 2 h 1 min after the last good fetch
        status = service.status()
        assert status.fallback
        assert status.reason is not None and status.reason.startswith(
            "spot price not updated for 2 h 1 min (last error: HTTP 502 from http://127.0.0.1")
        assert service.current(cp()).source == "static"
        feeds.recorded("spot", "awattar_de_2024-05-14.json")
        status = await service.refresh()
        assert not status.fallback and service.current(cp()).source == "dynamic"
    finally:
        await service.close()


async def test_query_strings_stay_out_of_errors(feeds: FeedServer) -> None:
    feeds.answer("btc", "forbidden", 403)
    settings = feeds.settings(feeds={"btc_url": feeds.url("btc") + "?x_cg_api_key=SECRETKEY"})
    service = TariffService(settings, clock=Clock(), outbound=loopback_outbound())
    status = await service.refresh()
    await service.close()
    assert status.btc_error is not None and "HTTP 403" in status.btc_error
    assert "SECRETKEY" not in json.dumps(status.to_json())


async def test_cache_survives_a_restart(feeds: FeedServer, tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "s.sqlite3")
    try:
        first = TariffService(feeds.settings(), db, clock=Clock(), outbound=loopback_outbound())
        await first.refresh()
        before = first.current(cp())
        await first.close()
        feeds.answer("spot", "down", 500)
        feeds.answer("btc", "down", 500)
        second = TariffService(feeds.settings(), db, clock=Clock(), outbound=loopback_outbound())
        await second.start()
        # At once, from the cache alone (the feeds are down).
        assert second.current(cp()) == before and before.source == "dynamic"
        await until(lambda: second.status().spot_error is not None)
        assert second.current(cp()) == before  # a failed fetch does not drop good values
        await second.close()
        # Another feed URL: the cached values are not its values.
        other = TariffService(feeds.settings(feeds={"spot_url": feeds.url("other")}), db,
                              clock=Clock(), outbound=loopback_outbound())
        await other.start()
        assert other.current(cp()).source == "static"
        await other.close()
    finally:
        await db.close()


async def test_scheduler_picks_up_a_changed_feed(feeds: FeedServer) -> None:
    service = TariffService(feeds.settings(feeds={"interval_seconds": 1, "max_age_seconds": 60}),
                            clock=Clock(), outbound=loopback_outbound())
    await service.start()
    try:
        await until(lambda: service.current(cp()).source == "dynamic")
        assert service.current(cp()).price_msat_per_kwh == expected_msat(SPOT_AT_1030, BTC)
        feeds.recorded("btc", "coingecko_btc_eur_later.json")
        changed = expected_msat(SPOT_AT_1030, 56188)
        await until(lambda: service.current(cp()).price_msat_per_kwh == changed)
        assert feeds.hits["btc"] >= 2
    finally:
        await service.close()


async def test_close_does_not_wait_for_a_hanging_feed(feeds: FeedServer) -> None:
    feeds.recorded("spot", "awattar_de_2024-05-14.json")
    feeds.answers["spot"].delay = 30
    service = TariffService(feeds.settings(feeds={"timeout_seconds": 60}), clock=Clock(), outbound=loopback_outbound())
    await service.start()
    await until(lambda: feeds.hits.get("spot", 0) > 0)
    started = time.monotonic()
    await service.close()
    assert time.monotonic() - started < 2


async def test_unreachable_feed_is_a_reason_not_a_crash(feeds: FeedServer) -> None:
    settings = feeds.settings(feeds={"spot_url": "http://127.0.0.1:9/closed"})
    service = TariffService(settings, clock=Clock(), outbound=loopback_outbound())
    status = await service.refresh()
    await service.close()
    assert status.fallback and status.spot_error is not None
    assert status.spot_error.startswith("cannot fetch http://127.0.0.1:9/closed")


# --- quotes and the tariff record --------------------------------------------------------------

def test_quote_book_gives_a_quote_once_and_within_its_life() -> None:
    clock = Clock()
    book = QuoteBook(timedelta(seconds=300), clock, capacity=3)
    tariff = Tariff(price_msat_per_kwh=1234, source="dynamic")
    holds = lambda quote: True  # noqa: E731
    qid, _ = book.issue("cp-1", tariff, tariff)
    assert book.take("cp-2", qid, holds) == (None, False)
    assert book.take("cp-1", "forged", holds) == (None, False)
    quote, taken = book.take("cp-1", qid, holds)
    assert taken and quote is not None and quote.tariff == tariff
    assert book.take("cp-1", qid, holds) == (quote, False)  # once
    qid, _ = book.issue("cp-1", tariff, tariff)
    clock.advance(seconds=300)
    assert book.take("cp-1", qid, holds)[1] is False  # its lifetime is over
    # A quote of a spot slot ends with the slot, and a cancelled one at once.
    slot = Tariff(price_msat_per_kwh=1, valid_until="2024-05-14T10:35:01.000Z")
    assert book.issue("cp-1", slot, tariff)[1].ends_at == clock.now + timedelta(seconds=1)
    qid, _ = book.issue("cp-2", tariff, tariff)
    assert book.cancel("cp-2") == 1 and book.take("cp-2", qid, holds)[1] is False
    ids = [book.issue("cp-1", tariff, tariff)[0] for _ in range(4)]
    assert book.take("cp-1", ids[0], holds) == (None, False)  # beyond capacity: forgotten
    assert book.take("cp-1", ids[-1], holds)[1]


async def test_quoted_price_holds_across_a_feed_change_once(feeds: FeedServer) -> None:
    service = TariffService(feeds.settings(), clock=Clock(), outbound=loopback_outbound())
    await service.refresh()
    shown, quote_id = service.quote(cp())
    feeds.recorded("btc", "coingecko_btc_eur_later.json")
    await service.refresh()
    await service.close()
    assert service.current(cp()) != shown
    assert service.quoted(cp(), quote_id).tariff == shown
    again = service.quoted(cp(), quote_id)  # taken: a fresh quote, and what was shown
    assert (again.tariff, again.shown) == (service.current(cp()), shown)
    assert service.quoted(cp(), None).tariff == service.current(cp())


def test_tariff_json_keeps_basis_and_reads_old_records() -> None:
    tariff = Tariff(price_msat_per_kwh=387_498, source="dynamic",
                    valid_until="2024-05-14T11:00:00.000Z",
                    basis={"spot_eur_per_mwh": 38.64, "btc_eur": BTC})
    assert Tariff.from_json(json.loads(json.dumps(tariff.to_json()))) == tariff
    old = {"price_msat_per_kwh": 300_000, "session_fee_msat": 0, "price_msat_per_minute": 0,
           "grace_minutes": 0, "min_prepay_msat": 1_000_000, "max_prepay_msat": 100_000_000,
           "source": "static", "valid_until": None, "currency": "msat"}
    assert Tariff.from_json(old) == Tariff(price_msat_per_kwh=300_000)


async def test_expensive_hours_set_a_power_ceiling(feeds: FeedServer) -> None:
    """Above `expensive_above_msat_per_kwh` a charger's sessions in a site get
    `expensive_max_power_w`; a charger with its own fixed price never does."""
    clock = Clock()
    settings = feeds.settings(dynamic={"expensive_above_msat_per_kwh": 350_000,
                                       "expensive_max_power_w": 3_680})
    service = TariffService(settings, clock=clock, outbound=loopback_outbound())
    try:
        await service.refresh()
        assert service.current(cp()).price_msat_per_kwh == 387_498  # 10:30: expensive
        assert service.power_ceiling_w(cp()) == 3_680
        assert service.power_ceiling_w(cp({"price_msat_per_kwh": 900_000})) is None
        clock.advance(hours=1)  # 11:30: spot 4.12 EUR/MWh
        assert service.power_ceiling_w(cp()) is None
    finally:
        await service.close()
    off = TariffService(feeds.settings(), clock=Clock(), outbound=loopback_outbound())
    await off.refresh()
    assert off.power_ceiling_w(cp()) is None  # 0: no expensive hours
    await off.close()
