"""Dynamic tariffs in use: a session keeps its locked price; the charger page shows the hours ahead."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from strom.app import StromApp
from strom.config import SessionSettings
from strom.events import EventBus, MeterSample, TransactionStarted
from strom.sessions.lifecycle import SessionService
from strom.sessions.model import State
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.tariffs.model import describe
from strom.tariffs.pricing import TariffService
from strom.timeutil import utcnow
from tests.conftest import loopback_outbound
from tests.doubles.edges import FakeChargers, FakeWallet
from tests.unit.feed_server import DAY, Clock, FeedServer, expected_msat, until

BTC = 57931.0


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        server.recorded("spot", "awattar_de_2024-05-14.json")
        server.recorded("btc", "coingecko_btc_eur.json")
        yield server


async def _wait_state(sessions: SessionService, session_id: str, state: State) -> None:
    async def reached() -> bool:
        session = await sessions.repo.get(session_id)
        return session is not None and session.state == state
    await until(reached)


async def test_session_pays_the_locked_price_when_the_feed_changes(
        db: Database, feeds: FeedServer) -> None:
    cps = ChargePointRepository(db)
    await cps.add("cp-1", name="One", lat=52.5, lon=13.4, num_connectors=1)
    await cps.set_connected("cp-1", True)
    await cps.set_connector_status("cp-1", 1, "Available")
    clock = Clock()
    tariffs = TariffService(feeds.settings(), db, clock=clock, outbound=loopback_outbound())
    await tariffs.refresh()
    wallet = FakeWallet()
    sessions = SessionService(db=db, bus=EventBus(), settings=SessionSettings(safety_margin_msat=0),
                              charge_points=cps, wallet=wallet, chargers=FakeChargers())
    await sessions.start()
    try:
        cp = await cps.get("cp-1")
        assert cp is not None
        sold = tariffs.current(cp)
        locked = expected_msat(38.64, BTC)
        assert (sold.source, sold.price_msat_per_kwh) == ("dynamic", locked)
        pending = await sessions.create_pending(cp, None, sold, 3_000_000,
                                                description_hash=b"\0" * 32)
        wallet.settle(pending.payment_hash)
        await sessions.on_paid(pending.payment_hash, 3_000_000)
        sid = pending.session.id
        await _wait_state(sessions, sid, State.STARTING)
        session = await sessions.repo.get(sid)
        assert session is not None
        await sessions.on_transaction_started(TransactionStarted(
            "cp-1", 1, 77, session.id_tag, 1000.0, utcnow()))
        await _wait_state(sessions, sid, State.CHARGING)
        await sessions.on_meter(MeterSample("cp-1", 1, 77, utcnow(), energy_wh=2000.0))
        assert (await sessions.repo.get(sid)).consumed_msat == locked  # type: ignore[union-attr]

        # Mid-session the evening peak arrives and bitcoin falls: the market price rises.
        clock.advance(hours=8)
        feeds.recorded("btc", "coingecko_btc_eur_later.json")
        await tariffs.refresh()
        now_price = tariffs.current(cp).price_msat_per_kwh
        assert now_price == expected_msat(134.22, 56188) > locked * 3 // 2

        await sessions.on_meter(MeterSample("cp-1", 1, 77, utcnow(), energy_wh=4000.0))
        session = await sessions.repo.get(sid)
        assert session is not None
        assert session.consumed_msat == 3 * locked  # 3 kWh, all at the price sold
        assert session.tariff == sold  # and the record says which price and feed values applied
        assert session.tariff.basis is not None
        assert session.tariff.basis["spot_eur_per_mwh"] == 38.64
        assert session.tariff.basis["btc_eur"] == BTC
        assert session.paid_msat == session.consumed_msat + session.refundable_msat
    finally:
        await sessions.close()
        await tariffs.close()


async def test_page_shows_the_next_hours_and_the_fallback(app: StromApp, feeds: FeedServer) -> None:
    assert app.services is not None
    clock = Clock()
    tariffs = TariffService(feeds.settings(), app.services.db, clock=clock, outbound=loopback_outbound())
    await tariffs.refresh()
    app.services.tariffs = tariffs
    await app.services.charge_points.add("cp-dyn", name="Harbour", lat=53.54, lon=9.98)
    try:
        async with httpx.AsyncClient(base_url=app.http_url) as http:
            page = (await http.get("/cp/cp-dyn")).text
            public = (await http.get("/api/v1/public/charge-points/cp-dyn")).json()
            table = re.search(r'<table id="price-schedule">(.*?)</table>', page, re.S)
            assert table is not None
            rows = re.findall(r"<tr[ >].*?</tr>", table.group(1), re.S)[1:]  # minus the header
            # 12 hours ahead from 10:30: the slots starting 10:00 … 22:00.
            assert len(rows) == 13
            assert "10:00" in rows[0] and "38.64" in rows[0]
            assert f"{expected_msat(38.64, BTC) / 1000:,.0f}" in rows[0]
            assert "22:00" in rows[-1] and "92.18" in rows[-1]
            assert "spot 38.64 EUR/MWh at 57,931 EUR/BTC" in page
            assert "spot prices 0 s old, BTC/EUR 0 s old" in page
            assert "Market price unavailable" not in page
            assert public["tariff"]["source"] == "dynamic"
            assert public["tariff"]["valid_until"] == "2024-05-14T11:00:00.000Z"
            # The document nostr status links to (`schedule_url`) has the whole schedule.
            assert len(public["schedule"]) == 13 and public["feeds"]["fallback"] is False
            assert public["schedule"][0]["start"].startswith("2024-05-14T10:00")

            feeds.answer("spot", "upstream down", 500)
            clock.advance(hours=3)
            await tariffs.refresh()
            page = (await http.get("/cp/cp-dyn")).text
            public = (await http.get("/api/v1/public/charge-points/cp-dyn")).json()
        assert "Market price unavailable" in page
        assert "spot price not updated for 3 h 0 min." in page
        assert "HTTP 500" not in page and feeds.url("spot") not in page
        assert "spot feed failing" in page
        assert 'id="price-schedule"' not in page
        assert "spot prices 3 h 0 min old" in page
        assert public["tariff"]["source"] == "static"
        assert public["tariff"]["price_msat_per_kwh"] == 300_000
        assert "spot price not updated" in public["tariff"]["basis"]["fallback"]
    finally:
        await tariffs.close()


def _three_slots() -> str:
    """10:00 middling, 11:00 cheap, 12:00 dear (EUR/MWh) on the recorded day."""
    return json.dumps([{"start": (DAY + timedelta(hours=h)).isoformat(),
                        "end": (DAY + timedelta(hours=h + 1)).isoformat(), "price": price}
                       for h, price in ((10, 100.0), (11, 20.0), (12, 200.0))])


@pytest.mark.parametrize("lock", ["session", "slot"])
async def test_energy_in_later_slots_is_billed_by_the_rule_shown(
        db: Database, feeds: FeedServer, lock: str) -> None:
    """Paid at 10:30; 1 kWh in each of the 10:00, 11:00 and 12:00 slots."""
    feeds.answer("spot", _three_slots())
    cps = ChargePointRepository(db)
    await cps.add("cp-1", name="One", lat=52.5, lon=13.4, num_connectors=1)
    await cps.set_connected("cp-1", True)
    await cps.set_connector_status("cp-1", 1, "Available")
    clock = Clock()
    tariffs = TariffService(feeds.settings(feeds={"spot_provider": "json"}, price_lock=lock),
                            db, clock=clock, outbound=loopback_outbound())
    await tariffs.refresh()
    wallet = FakeWallet()
    sessions = SessionService(db=db, bus=EventBus(), settings=SessionSettings(safety_margin_msat=0),
                              charge_points=cps, wallet=wallet, chargers=FakeChargers())
    await sessions.start()
    try:
        cp = await cps.get("cp-1")
        assert cp is not None
        sold = tariffs.current(cp)
        paid, cheap, dear = (expected_msat(p, BTC) for p in (100.0, 20.0, 200.0))
        assert sold.price_msat_per_kwh == paid and sold.lock == lock
        words = describe(sold)
        assert ("slot by slot, this price as a cap" in words) == (lock == "slot")
        assert ("locked for your whole session" in words) == (lock == "session")
        pending = await sessions.create_pending(cp, None, sold, 5_000_000,
                                                description_hash=b"\0" * 32)
        wallet.settle(pending.payment_hash)
        await sessions.on_paid(pending.payment_hash, 5_000_000)
        sid = pending.session.id
        await _wait_state(sessions, sid, State.STARTING)
        session = await sessions.repo.get(sid)
        assert session is not None
        await sessions.on_transaction_started(TransactionStarted(
            "cp-1", 1, 77, session.id_tag, 0.0, clock.now))
        await _wait_state(sessions, sid, State.CHARGING)
        for minutes, wh in ((15, 1000.0), (60, 2000.0), (120, 3000.0)):  # 10:45, 11:30, 12:30
            await sessions.on_meter(MeterSample("cp-1", 1, 77,
                                                clock.now + timedelta(minutes=minutes),
                                                energy_wh=wh))
        session = await sessions.repo.get(sid)
        assert session is not None
        # The 12:00 slot is dearer than the price paid: the paid price caps it.
        assert session.consumed_msat == (3 * paid if lock == "session"
                                         else paid + cheap + paid)
        assert cheap < paid < dear
        assert session.paid_msat == session.consumed_msat + session.refundable_msat
        # Where slot billing stands is stored with the session: a restart bills on from it.
        assert (session.rated_msat, session.rate_since_wh) == (
            (0, 0.0) if lock == "session" else (paid + cheap, 2000.0))
    finally:
        await sessions.close()
        await tariffs.close()
