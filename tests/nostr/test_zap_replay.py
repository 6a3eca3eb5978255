"""Issue 16, defect 1: a zap request is public (it rides in the receipt's `description`), so
presenting it again must grant nothing. The attacker here only replays what the relay shows
everyone; the victim zaps through the public LNURL callback and pays."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
from nostr_sdk import EventBuilder, Keys, Kind, Tag, Timestamp, uniffi_set_event_loop

from strom.app import StromApp
from strom.sessions.model import State
from strom.simulator.charge_point import SimulatedChargePoint
from tests.conftest import free_settings
from tests.nostr.conftest import CP, Driver, register
from tests.nostr.test_zaps_and_dms import AMOUNT, dev_pay, zap_answer, zap_request
from tests.polling import eventually


async def test_a_replayed_zap_request_is_no_key_to_the_victims_session(
        nostr_app: tuple[StromApp, Keys], driver: Driver, http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    answer = await zap_answer(app, http, driver, cp_keys.public_key().to_hex())
    sessions = app.services.sessions
    victim = (await sessions.repo.list(cp_id=CP))[0]
    secrets = [victim.token, victim.view_token]
    # The zap's own answer does not carry the session credential either: that goes by DM.
    assert not any(t in json.dumps(answer) for t in secrets), answer
    await dev_pay(app, http, answer["pr"])
    receipt = await driver.next(9735)
    # What everyone on the relay can read: the zap request, in the receipt's description.
    public = {t.to_vec()[0]: t.to_vec()[1] for t in receipt.tags()}["description"]
    victim = await eventually(lambda: sessions.repo.get(victim.id),
                              lambda s: s.state == State.CHARGING)

    # The attacker replays the victim's zap request from the receipt.
    async with httpx.AsyncClient(base_url=app.http_url, timeout=20) as attacker:
        pay = (await attacker.get(f"/lnurlp/{CP}")).json()
        replay = await attacker.get(pay.get("callback", f"{app.http_url}/lnurlp/{CP}/callback"),
                                    params={"amount": AMOUNT, "nostr": public})
    assert replay.status_code == 200
    body = replay.json()
    assert not any(t in replay.text for t in secrets), body
    assert body["status"] == "ERROR" and "already used" in body["reason"], body
    after = await sessions.repo.get(victim.id)
    assert after.state == State.CHARGING and after.refunded_msat == 0
    assert after.paid_msat == AMOUNT


async def test_stale_zap_requests_are_refused(
        nostr_app: tuple[StromApp, Keys], driver: Driver, http: httpx.AsyncClient) -> None:
    app, cp_keys = nostr_app
    cp_pub = cp_keys.public_key().to_hex()
    for shift, words in ((-11 * 60, "too old"), (11 * 60, "in the future")):
        tags = [["p", cp_pub], ["relays", app.relay.url], ["amount", str(AMOUNT)]]
        stale = (EventBuilder(Kind(9734), "").tags([Tag.parse(t) for t in tags])
                 .custom_created_at(Timestamp.from_secs(int(time.time()) + shift))
                 .finalize(driver.keys).as_json())
        answer = (await http.get(f"/lnurlp/{CP}/callback",
                                 params={"amount": AMOUNT, "nostr": stale})).json()
        assert answer["status"] == "ERROR" and words in answer["reason"], answer
    assert await app.services.sessions.repo.list(cp_id=CP) == []


async def test_a_used_zap_request_stays_used_after_a_restart(data_dir: Path) -> None:
    uniffi_set_event_loop(asyncio.get_running_loop())
    cp_keys = await register(data_dir)
    zapper = Keys.generate()
    request = None
    for round_ in range(2):
        async with StromApp(free_settings(), data_dir) as app, \
                httpx.AsyncClient(base_url=app.http_url, timeout=20) as http:
            charger = SimulatedChargePoint(CP, app.services.central_system.url, connectors=2)
            await charger.start()
            await eventually(lambda: app.services.charge_points.get(CP),
                             lambda cp: cp is not None and cp.status == "Available")
            request = request or zap_request(zapper, cp_keys.public_key().to_hex(),
                                             app.relay.url)
            answer = (await http.get(f"/lnurlp/{CP}/callback",
                                     params={"amount": AMOUNT, "nostr": request})).json()
            await charger.close()
            if round_ == 0:
                assert "pr" in answer, answer
            else:
                assert answer["status"] == "ERROR" and "already used" in answer["reason"]
