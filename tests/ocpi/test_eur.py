"""OCPI in EUR (`[ocpi] currency = "EUR"`) against the spec-written eMSP and a local BTC/EUR
feed (the recorded CoinGecko answers): without a rate strom publishes BTC rather than invent
one; with it the Tariff, the Session pushes and the CDR are in EUR; the CDR keeps the rate of
its completion (and the exact msat) on every later pull, while the Tariff follows the feed."""

from __future__ import annotations

from pathlib import Path

from strom.ocpi.currency import MSAT_PER_BTC
from tests.doubles.emsp import Emsp
from tests.money.conftest import CP, running_world
from tests.ocpi.conftest import FAST_PUSH, at_once, command, registered
from tests.polling import eventually
from tests.unit.feed_server import FeedServer

RATE, LATER = 57931.0, 56188.0  # coingecko_btc_eur.json, coingecko_btc_eur_later.json


def eur(msat: int, rate: float) -> float:
    return round(msat * rate / MSAT_PER_BTC, 4)


async def test_roaming_in_eur_at_the_feeds_rate(data_dir: Path) -> None:
    async with FeedServer() as feeds, running_world(
            data_dir, ocpi={**FAST_PUSH["ocpi"], "currency": "EUR"},
            tariff={"feeds": {"btc_url": feeds.url("btc"), "interval_seconds": 1,
                              "max_age_seconds": 3600}}) as world, Emsp().running() as emsp:
        await registered(world, emsp)
        http, services = world.http, world.app.services
        assert services is not None
        # The feed answers 404: no rate, so the Tariff is in BTC, exact.
        await eventually(lambda: at_once(feeds.hits.get("btc", 0)), lambda hits: hits >= 1)
        tariff = (await http.get(emsp.strom_endpoints["tariffs"], headers=emsp.auth)).json()
        assert tariff["data"][0]["currency"] == "BTC", tariff

        feeds.recorded("btc", "coingecko_btc_eur.json")
        await eventually(lambda: at_once(services.tariffs.btc_rate()),
                         lambda rate: rate is not None)
        tariff = (await http.get(emsp.strom_endpoints["tariffs"], headers=emsp.auth)).json()
        body = tariff["data"][0]
        assert (body["currency"], body["strom_eur_per_btc"]) == ("EUR", RATE)
        energy = body["elements"][0]["price_components"][0]
        assert energy == {"type": "ENERGY", "price": eur(300_000, RATE), "step_size": 1}

        token = {"country_code": "NL", "party_id": "EMS", "uid": "CARD-0001", "type": "RFID",
                 "contract_id": "NL-EMS-C00001234-X", "issuer": "Test eMSP", "valid": True,
                 "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"}
        answer = await command(http, emsp, "START_SESSION", "s-1", token=token, location_id=CP,
                               evse_uid=f"{CP}-1", connector_id="1")
        assert answer.json()["data"]["result"] == "ACCEPTED", answer.text
        await world.charger.wait_for(lambda: world.charger.transaction_id(1) is not None)
        pushed = await eventually(lambda: at_once(emsp.pushes("sessions", "PUT")),
                                  lambda p: any(b["kwh"] > 0 for _, _, b in p))
        live = next(b for _, _, b in pushed if b["kwh"] > 0)
        assert live["currency"] == "EUR" and live["strom_eur_per_btc"] == RATE
        assert live["total_cost"]["excl_vat"] == eur(live["strom_cost_msat"], RATE)
        stopped = await http.post("/ocpi/2.2.1/commands/STOP_SESSION", headers=emsp.auth, json={
            "response_url": f"{emsp.base}/2.2.1/commands/STOP_SESSION/s-2",
            "session_id": live["id"]})
        assert stopped.json()["data"]["result"] == "ACCEPTED", stopped.text
        cdrs = await eventually(lambda: at_once(emsp.pushes_to("cdrs", "POST")),
                                lambda c: len(c) == 1)
        cdr = cdrs[0][2]
        session = await services.ocpi.roaming.get(live["id"])
        assert session is not None and session.cost_msat > 0
        assert cdr["currency"] == "EUR" and cdr["strom_cost_msat"] == session.cost_msat
        assert cdr["total_cost"]["excl_vat"] == eur(session.cost_msat, RATE) > 0
        assert cdr["strom_eur_per_btc"] == RATE and cdr["strom_rate_at"] == session.rate_at
        check = (await http.get("/api/v1/ledger/check", headers=world.admin)).json()
        assert check["ok"] and check["roaming_owed_msat"] == session.cost_msat, check

        # The rate moves: the Tariff follows, the CDR (and the completed Session) do not.
        feeds.recorded("btc", "coingecko_btc_eur_later.json")
        await eventually(lambda: at_once(services.tariffs.btc_rate()),
                         lambda rate: rate is not None and rate.eur_per_btc == LATER)
        tariff = (await http.get(emsp.strom_endpoints["tariffs"], headers=emsp.auth)).json()
        assert tariff["data"][0]["strom_eur_per_btc"] == LATER
        pulled = (await http.get(emsp.strom_endpoints["cdrs"], headers=emsp.auth)).json()
        assert pulled["data"][0]["total_cost"] == cdr["total_cost"]
        assert pulled["data"][0]["strom_eur_per_btc"] == RATE
        listed = (await http.get(emsp.strom_endpoints["sessions"], headers=emsp.auth)).json()
        assert listed["data"][0]["total_cost"] == cdr["total_cost"]
