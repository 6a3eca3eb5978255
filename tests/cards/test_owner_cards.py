"""The owner's RFID cards end to end (issue 21): the ocpp library's 1.6 ChargePoint as the
charger (`tests.cards.charger`), the admin API as the operator, a lightning payer beside them.

A card taps, charges and stops as a session of its own kind; a billed card is stopped when
its account runs out; a start made offline from the charger's local list is accounted when it
arrives; a removed card is refused and chargers get a Differential list; a charger without
the profile is reported, not broken; bad input gets a clear 4xx.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from strom.app import StromApp
from strom.cards import charging
from strom.timeutil import iso, utcnow
from tests.api.charger import running_charger
from tests.cards.charger import CardCharger, NoListCharger
from tests.conftest import free_settings
from tests.money.conftest import CP, World
from tests.polling import eventually

PRICE_MSAT_PER_KWH = 30_000_000  # 30 msat per Wh


@pytest.fixture
async def strom(data_dir: Path) -> AsyncIterator[StromApp]:
    settings = free_settings(tariff={"price_msat_per_kwh": PRICE_MSAT_PER_KWH},
                             sessions={"max_power_w": 11_000.0})
    async with StromApp(settings, data_dir) as app:
        await app.services.charge_points.add(CP, name="Home", lat=50.1, lon=8.7,
                                             num_connectors=2)
        yield app


@pytest.fixture
async def api(strom: StromApp) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {strom.services.admin_token}"}
    async with httpx.AsyncClient(base_url=strom.http_url, headers=headers, timeout=30) as http:
        yield http


def ocpp_url(strom: StromApp) -> str:
    assert strom.services.central_system is not None
    return strom.services.central_system.url


async def add(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await api.post(path, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def card_session(api: httpx.AsyncClient, check: Any) -> dict[str, Any]:
    async def newest() -> dict[str, Any] | None:
        items = (await api.get("/api/v1/card-sessions")).json()["items"]
        return items[0] if items else None

    return await eventually(newest, lambda s: s is not None and check(s))  # type: ignore


async def ledger_ok(api: httpx.AsyncClient) -> dict[str, Any]:
    check = await api.get("/api/v1/ledger/check")
    assert check.status_code == 200 and check.json()["ok"], check.text
    return check.json()


async def test_a_free_card_charges_beside_a_lightning_payer(strom: StromApp,
                                                            api: httpx.AsyncClient) -> None:
    await add(api, "/api/v1/cards", {"id_tag": "FAMILY-1", "rule": "free", "label": "Anna"})
    async with running_charger(ocpp_url(strom), CP, charger_class=CardCharger) as charger:
        # Booted: the charger's list (version 0) differs, so it gets the Full list.
        await eventually(lambda: _value(charger.local_list), lambda v: v == {
            "FAMILY-1": "Accepted"})
        assert charger.updates[0][:2] == ("Full", 1)
        world = World(strom, None, api)  # type: ignore[arg-type]
        paid = await world.pay_to_charge(1_000_000)
        await world.session_until(paid["url"], lambda s: s["state"] == "charging")
        await charger.meter(1, 10.0, 3_000.0)  # the payer's connector: 10 Wh

        # The card (any case: idTags are case-insensitive) on connector 2.
        assert await charger.tap(2, "family-1") == ("Accepted", "Accepted")
        await charger.meter(2, 500.0, 7_000.0)
        await charger.stop(2)
        done = await card_session(api, lambda s: s["state"] == "stopped")
        assert done["kind"] == "card" and done["rule"] == "free" and done["id_tag"] == "FAMILY-1"
        assert done["energy_wh"] == 500.0 and done["consumed_msat"] == 0

        payer = await world.session(paid["url"])
        assert payer["energy_wh"] == 10.0  # the card's 500 Wh are nobody's payment
        assert payer["consumed_msat"] == 10 * 30_000
        assert payer["paid_msat"] == 1_000_000
        report = await ledger_ok(api)
        assert report["card_sessions"] == 1 and report["card_consumed_msat"] == 0
        assert report["consumed_msat"] == payer["consumed_msat"]


async def test_a_billed_card_is_stopped_when_its_account_is_used_up(
        strom: StromApp, api: httpx.AsyncClient) -> None:
    await add(api, "/api/v1/card-accounts", {"id": "fleet", "balance_msat": 600_000})
    await add(api, "/api/v1/cards", {"id_tag": "VAN-7", "rule": "account", "account": "fleet"})
    async with running_charger(ocpp_url(strom), CP, charger_class=CardCharger) as charger:
        await eventually(lambda: _value(charger.local_list), lambda v: v == {"VAN-7": "Accepted"})
        assert await charger.tap(1, "VAN-7") == ("Accepted", "Accepted")
        energy = 0.0
        while 1 in charger.transactions and energy < 200:  # 200 Wh would cost 6,000 sat
            energy += 2.0
            await charger.meter(1, energy, 7_200.0)
            await asyncio.sleep(0.05)
        assert charger.remote_stops, "strom never told the charger to stop"
        done = await card_session(api, lambda s: s["state"] == "stopped")
        assert done["stop_reason"] == "account balance used up"
        assert done["energy_wh"] < 20  # 600 sat buy 20 Wh
        fleet = (await api.get("/api/v1/card-accounts/fleet")).json()
        assert fleet["balance_msat"] == 600_000 - done["consumed_msat"] >= 0
        assert done["consumed_msat"] == done["energy_wh"] * 30_000
        report = await ledger_ok(api)
        assert report["card_consumed_msat"] == done["consumed_msat"]


async def test_an_empty_account_blocks_its_cards_in_the_chargers_list(
        strom: StromApp, api: httpx.AsyncClient) -> None:
    await add(api, "/api/v1/card-accounts", {"id": "staff", "balance_msat": 0})
    await add(api, "/api/v1/cards", {"id_tag": "STAFF-1", "rule": "account", "account": "staff"})
    async with running_charger(ocpp_url(strom), CP, charger_class=CardCharger) as charger:
        await eventually(lambda: _value(charger.local_list), lambda v: v == {"STAFF-1": "Blocked"})
        assert await charger.tap(1, "STAFF-1") == ("Blocked", "")
        topped = await api.post("/api/v1/card-accounts/staff/adjust",
                                json={"amount_msat": 50_000_000, "note": "November"})
        assert topped.status_code == 200 and topped.json()["balance_msat"] == 50_000_000
        await eventually(lambda: _value(charger.local_list), lambda v: v == {"STAFF-1": "Accepted"})
        assert charger.updates[-1][0] == "Differential"
        assert await charger.tap(1, "STAFF-1") == ("Accepted", "Accepted")


async def test_a_start_made_offline_is_accounted_when_it_arrives(
        strom: StromApp, api: httpx.AsyncClient) -> None:
    await add(api, "/api/v1/card-accounts", {"id": "family", "balance_msat": 50_000_000})
    await add(api, "/api/v1/cards", {"id_tag": "KID-2", "rule": "account", "account": "family"})
    async with running_charger(ocpp_url(strom), CP, charger_class=CardCharger) as charger:
        await eventually(lambda: _value(charger.local_list), lambda v: "KID-2" in v)
        kept = (charger.list_version, dict(charger.local_list))
    # Offline: the charger starts the card from its own list and queues the messages.
    assert kept[1]["KID-2"] == "Accepted"
    started_at = utcnow() - timedelta(minutes=3)
    async with running_charger(ocpp_url(strom), CP, charger_class=CardCharger) as charger:
        charger.list_version, charger.local_list = kept
        assert await charger.start_with(1, "KID-2", meter_start=12_000,
                                        timestamp=iso(started_at)) == "Accepted"
        charger.energy_wh[1] = 12_300.0
        await charger.stop(1, timestamp=iso(started_at + timedelta(minutes=2)))
        done = await card_session(api, lambda s: s["state"] == "stopped")
        assert done["energy_wh"] == 300.0 and done["consumed_msat"] == 300 * 30_000
        assert done["started_at"] == iso(started_at)
        family = (await api.get("/api/v1/card-accounts/family")).json()
        assert family["balance_msat"] == 50_000_000 - 9_000_000
        await ledger_ok(api)


async def test_a_removed_card_is_refused_and_chargers_get_a_differential_list(
        strom: StromApp, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await add(api, "/api/v1/cards", {"id_tag": "GUEST-1", "rule": "free"})
    await add(api, "/api/v1/cards", {"id_tag": "GUEST-2", "rule": "free"})
    await add(api, "/api/v1/cards", {"id_tag": "GUEST-3", "rule": "free"})
    async with running_charger(ocpp_url(strom), CP, charger_class=CardCharger) as charger:
        await eventually(lambda: _value(charger.local_list), lambda v: len(v) == 3)
        # SendLocalListMaxLength is 2: the Full list came in two pieces.
        assert [(kind, len(entries)) for kind, _, entries in charger.updates] == [
            ("Full", 2), ("Differential", 1)]
        cleared = charger.cache_cleared
        assert (await api.delete("/api/v1/cards/GUEST-2")).status_code == 204
        await eventually(lambda: _value(charger.local_list), lambda v: "GUEST-2" not in v)
        kind, version, entries = charger.updates[-1]
        assert (kind, version, entries) == ("Differential", 4, [{"id_tag": "GUEST-2"}])
        await eventually(lambda: _value(charger.cache_cleared), lambda n: n > cleared)
        assert await charger.tap(1, "GUEST-2") == ("Invalid", "")
        assert await charger.start_with(2, "GUEST-2") == "Invalid"
        assert await charger.tap(1, "STRANGER") == ("Invalid", "")
        assert await charger.tap(1, "GUEST-1") == ("Accepted", "Accepted")
        lists = (await api.get("/api/v1/local-list")).json()
        assert lists["version"] == 4
        assert lists["chargers"] == [{**lists["chargers"][0], "cp_id": CP, "list_version": 4,
                                      "supported": True, "detail": None}]
    # A card's number lets anyone clone it: strom's log names cards by their start only.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("strom."))
    assert "card GUES… removed" in ours and "GUEST-" not in ours


async def test_a_charger_without_a_local_list_is_reported_not_broken(
        strom: StromApp, api: httpx.AsyncClient) -> None:
    await add(api, "/api/v1/cards", {"id_tag": "FAMILY-9", "rule": "free"})
    async with running_charger(ocpp_url(strom), CP, charger_class=NoListCharger) as charger:
        lists = await eventually(lambda: _json(api, "/api/v1/local-list"),
                                 lambda v: bool(v["chargers"]))
        assert lists["chargers"][0]["supported"] is False
        assert "LocalAuthListManagement" in lists["chargers"][0]["detail"]
        assert charger.updates == []
        assert await charger.tap(1, "FAMILY-9") == ("Accepted", "Accepted")  # online still works


async def test_bad_input_gets_a_clear_answer(api: httpx.AsyncClient) -> None:
    await add(api, "/api/v1/card-accounts", {"id": "fleet"})
    await add(api, "/api/v1/cards", {"id_tag": "TAG-1", "rule": "free"})
    cases = [
        ({"id_tag": "tag-1", "rule": "free"}, 409, "registered already"),
        ({"id_tag": "X" * 21, "rule": "free"}, 422, "at most 20"),
        ({"id_tag": "TAG-2", "rule": "account", "account": "nope"}, 422, "unknown account"),
        ({"id_tag": "TAG-2", "rule": "account"}, 422, "needs the account"),
        ({"id_tag": "TAG-2", "rule": "free", "account": "fleet"}, 422, "no account"),
        ({"id_tag": "TAG 2", "rule": "free"}, 422, "id_tag"),
        ({"id_tag": "TAG-2", "rule": "gratis"}, 422, "rule"),
    ]
    for body, status, words in cases:
        answer = await api.post("/api/v1/cards", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["error"], (body, answer.text)
    assert (await api.delete("/api/v1/cards/NOPE")).status_code == 404
    taken = await api.post("/api/v1/card-accounts/fleet/adjust", json={"amount_msat": -1})
    assert taken.status_code == 422 and "cannot be taken" in taken.json()["error"]
    unknown = await api.post("/api/v1/card-accounts/nope/adjust", json={"amount_msat": 5})
    assert unknown.status_code == 422 and "unknown account" in unknown.json()["error"]
    again = await api.post("/api/v1/card-accounts", json={"id": "fleet"})
    assert again.status_code == 409 and "exists already" in again.json()["error"]


async def _value(value: Any) -> Any:
    return value


async def _json(api: httpx.AsyncClient, path: str) -> Any:
    return (await api.get(path)).json()


async def test_a_card_session_open_across_a_restart_is_billed_to_its_end(data_dir: Path) -> None:
    settings = free_settings(tariff={"price_msat_per_kwh": PRICE_MSAT_PER_KWH})
    async with StromApp(settings, data_dir) as first:
        await first.services.charge_points.add(CP, name="Home", lat=50.1, lon=8.7)
        registry = first.services.cards.registry  # type: ignore[union-attr]
        await registry.add_account("fleet", balance_msat=50_000_000)
        await registry.add_card("VAN-9", "account", account_id="fleet")
        async with running_charger(ocpp_url(first), CP, charger_class=CardCharger) as charger:
            assert await charger.tap(1, "VAN-9") == ("Accepted", "Accepted")
            await charger.meter(1, 100.0, 7_000.0)
            kept = (charger.transactions[1], charger.list_version, dict(charger.local_list))
        await first.services.db.flushed()
    async with StromApp(settings, data_dir) as second, \
            httpx.AsyncClient(base_url=second.http_url, timeout=30, headers={
                "Authorization": f"Bearer {second.services.admin_token}"}) as api:
        async with running_charger(ocpp_url(second), CP, charger_class=CardCharger) as charger:
            charger.transactions[1], charger.list_version, charger.local_list = kept
            await charger.meter(1, 250.0, 7_000.0)
            await charger.stop(1)
            done = await card_session(api, lambda s: s["state"] == "stopped")
        assert done["energy_wh"] == 250.0 and done["consumed_msat"] == 250 * 30_000
        fleet = (await api.get("/api/v1/card-accounts/fleet")).json()
        assert fleet["balance_msat"] == 50_000_000 - 7_500_000
        await ledger_ok(api)


async def test_a_charger_that_reconnects_without_booting_gets_the_list(
        strom: StromApp, api: httpx.AsyncClient) -> None:
    async with running_charger(ocpp_url(strom), CP, charger_class=CardCharger):
        pass  # known to strom, list version 0
    await add(api, "/api/v1/cards", {"id_tag": "LATE-1", "rule": "free"})
    # Reconnects after a network drop: no BootNotification, only its socket.
    async with connect(ocpp_url(strom) + CP, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        charger = CardCharger(CP, ws, 1)
        task = asyncio.create_task(charger.start())
        try:
            await eventually(lambda: _value(charger.local_list), lambda v: v == {
                "LATE-1": "Accepted"})
            assert charger.updates[0][0] == "Full"
        finally:
            task.cancel()


async def test_time_is_billed_and_stopped_without_readings(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charging, "TICK_SECONDS", 0.1)
    settings = free_settings(tariff={"price_msat_per_kwh": 0, "price_msat_per_minute": 6_000_000,
                                     "grace_minutes": 0})
    async with StromApp(settings, data_dir) as app, httpx.AsyncClient(
            base_url=app.http_url, timeout=30,
            headers={"Authorization": f"Bearer {app.services.admin_token}"}) as api:
        await app.services.charge_points.add(CP, name="Home", lat=50.1, lon=8.7)
        await add(api, "/api/v1/card-accounts", {"id": "parking", "balance_msat": 2_000_000})
        await add(api, "/api/v1/cards", {"id_tag": "PARK-1", "rule": "account",
                                         "account": "parking"})
        async with running_charger(ocpp_url(app), CP, charger_class=CardCharger) as charger:
            assert await charger.tap(1, "PARK-1") == ("Accepted", "Accepted")
            # 100,000 msat per second and no meter values at all: the tick bills the time.
            await eventually(lambda: _value(charger.remote_stops), bool, seconds=20)
            done = await card_session(api, lambda s: s["state"] == "stopped")
        assert done["stop_reason"] == "account balance used up"
        parking = (await api.get("/api/v1/card-accounts/parking")).json()
        assert parking["balance_msat"] == 2_000_000 - done["consumed_msat"] >= 0
        assert done["consumed_msat"] > 0
        await ledger_ok(api)
