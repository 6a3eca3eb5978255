"""Issue 19 ("Real nostr") against relays strom does not own: nostr-relay, an independent
implementation run as its own process with public relays' limits (4,096-character content,
an EVENT rate per address), and a relay that never answers (tests/doubles/public_relays.py).

Must show: a payer whose 10050 lists only relay B gets the DM answer on B (and a NIP-04
sender gets it on their NIP-65 read relay, and their profile is found on their write relay);
the status with a dynamic schedule fits a 4,096-character limit; a rate-limiting or silent
relay slows nothing else.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from nostr_sdk import (
    Event,
    EventBuilder,
    Filter,
    Keys,
    Kind,
    PublicKey,
    Tag,
    nip04_decrypt,
    nip04_encrypt,
    nip17_make_private_msg,
)

import bots.client
import bots.nostr_bots
from bots import events
from bots.client import NostrClient
from bots.inbox import InboxRelays
from bots.pacing import PERIOD, next_refresh, offset
from bots.profiles import PayerProfiles
from bots.relay_delivery import RelayDelivery
from bots.signed import SignedEvent
from strom.app import StromApp
from strom.sessions.model import State
from strom.views import document_url
from tests.conftest import free_settings, loopback_outbound
from tests.doubles.lightning_address import AddressProvider
from tests.doubles.public_relays import independent_relay, silent_relay
from tests.nostr.conftest import CP, Driver, client_on, keyed_strom
from tests.nostr.test_event_sizes import CP_ID, PUBLIC_URL, worst_charge_point
from tests.nostr.test_outbound_fences import CP_A, charge_then_stop, payer, two_chargers
from tests.polling import eventually


async def publish_soon(client: NostrClient, event: Event | SignedEvent) -> None:
    """Published once the client's connections are up (they open in the background)."""
    await eventually(lambda: client.publish(event), bool)


@asynccontextmanager
async def strom_with(data_dir: Path, relays: list[str], *,
                     embedded: bool = True) -> AsyncIterator[tuple[StromApp, str]]:
    """strom publishing to `relays` (and its embedded relay, if on); a keyed charger."""
    settings = free_settings(nostr={"relays": relays}, relay={"embedded": embedded})
    async with keyed_strom(data_dir, settings) as (app, cp_keys):
        yield app, cp_keys.public_key().to_hex()


def relay_list(keys: Keys, kind: int, tags: list[list[str]]) -> Event:
    return EventBuilder(Kind(kind), "").tags([Tag.parse(t) for t in tags]).finalize(keys)


async def test_dm_answers_reach_the_relays_each_sender_reads(data_dir: Path,
                                                             tmp_path: Path) -> None:
    async with independent_relay(tmp_path / "a") as relay_a, \
            independent_relay(tmp_path / "b") as relay_b, \
            strom_with(data_dir, [relay_a], embedded=False) as (app, cp_pub):
        assert app.relay is None  # public relays only: `strom relay` is optional
        cp = PublicKey.parse(cp_pub)
        # Payer 1 uses NIP-17 and reads DMs on relay B only (kind 10050).
        nip17_payer, nip04_payer = Keys.generate(), Keys.generate()
        async with client_on(relay_a, keys=nip17_payer) as phone:
            await publish_soon(phone, relay_list(nip17_payer, 10050, [["relay", relay_b]]))
            reader = Driver(relay_b)
            reader.keys = nip17_payer
            await reader.start()
            try:
                await phone.publish(nip17_make_private_msg(nip17_payer, cp, "help"))
                assert "stop –" in await reader.dm(sender=cp_pub)
            finally:
                await reader.client.close()
        # Payer 2 uses NIP-04 and reads on relay B (NIP-65 read), writes on relay A.
        async with client_on(relay_a, keys=nip04_payer) as phone:
            await publish_soon(phone, relay_list(nip04_payer, 10002,
                                                 [["r", relay_b, "read"], ["r", relay_a, "write"]]))
            answers: asyncio.Queue[Event] = asyncio.Queue()
            reader_b = NostrClient([relay_b], lambda: [nip04_payer], answers.put)
            await reader_b.start()
            try:
                await reader_b.subscribe("dm", [Filter().kinds([Kind(4)]).pubkeys(
                    [nip04_payer.public_key()])])
                asked = EventBuilder(Kind(4), nip04_encrypt(nip04_payer.secret_key(), cp, "help")) \
                    .tags([Tag.parse(["p", cp_pub])]).finalize(nip04_payer)
                await phone.publish(asked)
                async with asyncio.timeout(10):
                    answer = await answers.get()
                assert answer.author().to_hex() == cp_pub
                assert "stop –" in nip04_decrypt(nip04_payer.secret_key(), cp, answer.content())
            finally:
                await reader_b.close()


async def test_a_payers_profile_is_found_on_their_write_relay(tmp_path: Path) -> None:
    async with independent_relay(tmp_path / "a") as ours, \
            independent_relay(tmp_path / "b") as theirs:
        payer = Keys.generate()
        profile = EventBuilder(Kind(0), json.dumps({"lud16": "payer@wallet.example"}))
        async with client_on(ours, keys=payer) as on_ours, client_on(theirs, keys=payer) as home:
            # Their profile is only where they write; strom's relay has their relay list.
            await publish_soon(home, profile.finalize(payer))
            await publish_soon(on_ours, relay_list(payer, 10002, [["r", theirs, "write"]]))
            async with client_on(ours) as strom:
                elsewhere = RelayDelivery(loopback_outbound(), [ours])

                class NoZaps:
                    async def last_request_of(self, sender: str) -> str | None:
                        return None

                inboxes = InboxRelays(strom.fetch, NoZaps())  # type: ignore[arg-type]
                profiles = PayerProfiles(strom.fetch, inboxes, elsewhere.fetch)
                pubkey = payer.public_key().to_hex()
                assert await eventually(lambda: profiles.lud16_of(pubkey),
                                        lambda found: found is not None) == "payer@wallet.example"
                assert await inboxes.write_of(pubkey) == [theirs]


async def test_status_with_a_quarter_hour_schedule_fits_a_4096_character_relay(
        tmp_path: Path) -> None:
    cp, market = worst_charge_point()
    status = events.status(Keys.generate(), cp, int(time.time()), market,
                           document_url(PUBLIC_URL, CP_ID))
    async with independent_relay(tmp_path / "a") as relay, client_on(relay) as client:
        await publish_soon(client, status)
        stored = await client.fetch([Filter().kinds([Kind(events.STATUS)])])
        assert [e.id().to_hex() for e in stored] == [status.id]
        # The limit is real. (nostr-relay 1.14 names no event id in this refusal, so no client
        # can tell which event it was: strom's lane counts it as unanswered, rests the relay.)
        async with websockets.connect(relay) as raw:
            too_long = EventBuilder(Kind(1), "x" * 4097).finalize(Keys.generate())
            await raw.send(json.dumps(["EVENT", json.loads(too_long.as_json())]))
            answer = json.loads(await raw.recv())
        assert answer[0] == "OK" and answer[2] is False and answer[3].startswith("invalid:")


async def test_a_rate_limiting_relay_slows_nothing_else(tmp_path: Path) -> None:
    async with independent_relay(tmp_path / "busy", events_per_second=1) as busy, \
            independent_relay(tmp_path / "free") as free, client_on(busy, free) as client:
        keys = Keys.generate()
        await publish_soon(client, EventBuilder(Kind(1), "hello").finalize(keys))
        notes = [EventBuilder(Kind(1), f"note {n}").finalize(keys) for n in range(10)]
        started = time.monotonic()
        for note in notes:
            assert await client.publish(note)
        assert time.monotonic() - started < 2.0  # the busy relay's answers hold nobody up
        busy_state, free_state = client.relay_states()
        assert busy_state["last_refusal"] == "rate-limited"
        assert busy_state["resting_until"] is not None
        assert free_state["refused"] == 0 and free_state["accepted"] >= 11
        async with client_on(free) as reader:
            stored = await reader.fetch([Filter().kinds([Kind(1)]).author(keys.public_key())])
        assert {e.id().to_hex() for e in notes} <= {e.id().to_hex() for e in stored}


@asynccontextmanager
async def misbehaving(kind: str, directory: Path) -> AsyncIterator[str]:
    if kind == "silent":
        async with silent_relay() as url:
            yield url
    else:
        async with independent_relay(directory, events_per_second=1) as url:
            yield url


@pytest.mark.parametrize(("kind", "shows"), [("silent", "unanswered"),
                                             ("rate-limiting", "refused")])
async def test_a_silent_or_rate_limiting_relay_delays_no_dm_answer(
        kind: str, shows: str, data_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bots.client, "OK_SECONDS", 2.5)
    async with misbehaving(kind, tmp_path / "relay") as bad, \
            strom_with(data_dir, [bad]) as (app, cp_pub):
        assert app.relay is not None
        driver = Driver(app.relay.url)
        await driver.start()
        try:
            cp = PublicKey.parse(cp_pub)
            for n in range(3):
                mark = driver.received
                started = time.monotonic()
                await driver.client.publish(nip17_make_private_msg(driver.keys, cp, "help"))
                assert "stop –" in await driver.dm(sender=cp_pub, after=mark)
                # Well within the other relay's OK timeout: nobody waited for it.
                assert time.monotonic() - started < 1.25, f"answer {n}"
            async with httpx.AsyncClient(base_url=app.http_url) as http:
                async def bad_state() -> dict[str, Any]:
                    relays = (await http.get("/healthz")).json()["checks"]["nostr"]["relays"]
                    return next(r for r in relays if r["url"] == bad)
                state = await eventually(bad_state, lambda s: s[shows] >= 1)
            # What the operator reads: the relay's own words, or that it never answered.
            if kind == "rate-limiting":
                assert state["last_refusal"] == "rate-limited"
                assert state["last_reason"] == "rate-limited: slow down"
            else:
                assert state["accepted"] == 0 and state["resting_until"] is not None
        finally:
            await driver.client.close()


async def test_a_chargers_statuses_reach_relays_oldest_first(data_dir: Path) -> None:
    """Issue 18: "kind 30333 refused … a newer version of this event is stored" at startup.
    The start's announcement and a status change raced: the older status went out second."""
    async with strom_with(data_dir, []) as (app, _):
        assert app.bots is not None
        bots_ = app.bots
        sent: list[int] = []
        publish = bots_._client.publish

        async def recording(event: SignedEvent) -> bool:  # what the bots sign themselves
            if event.kind == events.STATUS:
                sent.append(json.loads(event.json)["created_at"])
            return await publish(event)

        bots_._client.publish = recording  # type: ignore[method-assign]
        await asyncio.gather(bots_._announce(CP), bots_.publish_status(CP),
                             bots_.publish_status(CP))
        assert len(sent) >= 3 and sent == sorted(sent)


def test_hourly_refreshes_are_spread_over_the_hour_and_never_late() -> None:
    offsets = [offset(f"cp-{n}") for n in range(360)]
    per_ten_minutes = [sum(1 for o in offsets if t <= o < t + 600) for t in range(0, 3600, 600)]
    assert min(per_ten_minutes) >= 30  # 60 expected in each sixth of the hour
    assert offset("cp-7") == offset("cp-7")  # the same after a restart
    at = 1_800_000_000.0
    for jitter in (0.0, 0.5, 1.0):
        fired = at
        for _ in range(5):
            following = next_refresh("cp-7", fired, rng=lambda j=jitter: j)
            assert fired < following <= fired + PERIOD
            fired = following


async def test_a_zapper_whose_profile_is_only_on_their_write_relay_is_refunded_there(
        data_dir: Path, tmp_path: Path) -> None:
    async with AddressProvider("carol").running() as wallet, \
            independent_relay(tmp_path / "home") as home, two_chargers(data_dir) as fleet:
        person = await payer(fleet)  # on strom's relay, where strom looks first
        try:
            await publish_soon(person.client, relay_list(person.keys, 10002,
                                                         [["r", home, "write"]]))
            profile = EventBuilder(Kind(0), json.dumps({"name": "carol",
                                                        "lud16": wallet.address}))
            async with client_on(home, keys=person.keys) as at_home:
                await publish_soon(at_home, profile.finalize(person.keys))
            ended = await charge_then_stop(fleet, person, CP_A)
            assert wallet.address in await person.dm("Stopped (")
            sessions = fleet.app.services.sessions
            assert sessions is not None
            done = await eventually(lambda: sessions.repo.get(ended.id),
                                    lambda s: s is not None and s.state == State.REFUNDED)
            assert done is not None and len(wallet.issued) == 1
        finally:
            await person.client.close()


async def test_the_refresh_loop_publishes_each_status_at_its_turn(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    turns: list[str] = []

    def soon(cp_id: str, after: float) -> float:
        turns.append(cp_id)
        return after + 0.2

    monkeypatch.setattr(bots.nostr_bots, "REFRESH_CHECK", 0.05)
    monkeypatch.setattr(bots.nostr_bots, "next_refresh", soon)
    async with strom_with(data_dir, []) as (app, cp_pub):
        assert app.relay is not None
        async with client_on(app.relay.url) as reader:
            async def statuses() -> list[Event]:
                return await reader.fetch([Filter().kinds([Kind(events.STATUS)])
                                           .author(PublicKey.parse(cp_pub))])
            first = (await eventually(statuses, bool))[0].created_at().as_secs()
            await eventually(statuses,
                             lambda found: found and found[0].created_at().as_secs() > first)
        assert set(turns) == {CP} and len(turns) >= 2
