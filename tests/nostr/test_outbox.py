"""Issue 19, "deliver where the recipient reads" (NIP-17 / NIP-65 outbox model), for DMs: a
payer's session DMs also go to the relays of their kind 10050 (else 10002 read relays, else
their zap request's relays), over one short, fenced connection each, closed after."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from nostr_sdk import Event, EventBuilder, Filter, Keys, Kind, Tag, Timestamp

from bots.inbox import LOOKUP_SECONDS, InboxCache, InboxRelays, UserRelays, relays_of
from relay import Relay
from tests.nostr.conftest import Driver
from tests.nostr.test_outbound_fences import CP_A, Fleet, _async, payer, two_chargers, zap
from tests.polling import eventually


@asynccontextmanager
async def payer_reading_elsewhere(tmp_path: Path,
                                  data_dir: Path) -> AsyncIterator[tuple[Fleet, Relay, Driver, Driver]]:
    """strom, a relay B it does not own, a payer on strom's relay and the same payer's phone
    subscribed to relay B only."""
    async with Relay(tmp_path / "inbox.sqlite3", "127.0.0.1", 0) as inbox, \
            two_chargers(data_dir) as fleet:
        person = await payer(fleet)
        reader = Driver(inbox.url)
        reader.keys = person.keys
        await reader.start()
        try:
            yield fleet, inbox, person, reader
        finally:
            await reader.client.close()
            await person.client.close()


async def test_a_payer_reading_only_their_10050_relay_gets_the_session_dms_there(
        data_dir: Path, tmp_path: Path) -> None:
    async with payer_reading_elsewhere(tmp_path, data_dir) as (fleet, inbox, person, reader):
        dm_list = EventBuilder(Kind(10050), "").tags([Tag.parse(["relay", inbox.url])])
        assert await person.client.publish(dm_list.finalize(person.keys))
        await zap(fleet, person, CP_A)
        await reader.dm("Payment of")
        await reader.dm("Charging started")
        # strom's connections to relay B are closed once each DM is delivered.
        await eventually(lambda: _async(inbox.connection_count), lambda n: n == 1)


async def test_without_a_list_the_zap_requests_relays_get_the_dms(
        data_dir: Path, tmp_path: Path) -> None:
    async with payer_reading_elsewhere(tmp_path, data_dir) as (fleet, inbox, person, reader):
        assert fleet.app.relay is not None
        await zap(fleet, person, CP_A, relays=[fleet.app.relay.url, inbox.url])
        await reader.dm("Charging started")
        await eventually(lambda: _async(inbox.connection_count), lambda n: n == 1)


async def test_a_payer_without_a_list_gets_dms_on_strom_s_relays_only(
        data_dir: Path, tmp_path: Path) -> None:
    async with payer_reading_elsewhere(tmp_path, data_dir) as (fleet, inbox, person, reader):
        await zap(fleet, person, CP_A)
        await person.dm("Charging started")
        await asyncio.sleep(0.5)
        assert reader.inbox.empty() and inbox.connection_count == 1


def test_the_cache_forgets_after_its_ttl_and_holds_at_most_its_bound() -> None:
    now = [1000.0]
    cache = InboxCache(ttl=60.0, size=2, clock=lambda: now[0])
    cache.put("a", ["wss://a"])
    assert cache.get("a") == ["wss://a"]
    now[0] += 61
    assert cache.get("a") is None  # stale: looked up again
    cache.put("a", [])
    cache.put("b", ["wss://b"])
    cache.put("c", ["wss://c"])  # the oldest entry makes room
    assert cache.get("a") is None and cache.get("b") == ["wss://b"] and len(cache) == 2
    assert cache.get("c") == ["wss://c"]


def test_a_users_10050_and_10002_read_and_write_relays() -> None:
    keys = Keys.generate()
    relays = EventBuilder(Kind(10002), "").tags([
        Tag.parse(["r", "wss://both"]), Tag.parse(["r", "wss://read", "read"]),
        Tag.parse(["r", "wss://write", "write"])]).finalize(keys)
    assert relays_of([relays]) == UserRelays(dm=[], read=["wss://both", "wss://read"],
                                             write=["wss://both", "wss://write"])
    dms = EventBuilder(Kind(10050), "").tags([Tag.parse(["relay", "wss://dm"])]) \
        .custom_created_at(Timestamp.from_secs(int(time.time()) - 9)) \
        .finalize(keys)
    assert relays_of([relays, dms]).dm == ["wss://dm"]


async def test_only_the_users_own_list_counts_and_a_lookup_is_cached() -> None:
    user, stranger = Keys.generate(), Keys.generate()
    forged = EventBuilder(Kind(10050), "").tags([Tag.parse(["relay", "wss://trap"])]) \
        .finalize(stranger)
    asked: list[float] = []

    async def fetch(filters: list[Filter], seconds: float) -> list[Event]:
        asked.append(seconds)
        return [forged]  # a relay may hand over anyone's events

    class NoZaps:
        async def last_request_of(self, sender: str) -> str | None:
            return json.dumps({"tags": [["relays", "wss://zapped", 7, "https://no"]]})

    inboxes = InboxRelays(fetch, NoZaps())  # type: ignore[arg-type]
    assert await inboxes.of(user.public_key().to_hex()) == ["wss://zapped"]
    assert await inboxes.of(user.public_key().to_hex()) == ["wss://zapped"]
    assert asked == [LOOKUP_SECONDS]  # once per TTL, bounded in time


async def test_dms_to_one_payer_during_their_lookup_share_it() -> None:
    user = Keys.generate()
    lists = EventBuilder(Kind(10050), "").tags([Tag.parse(["relay", "wss://dm"])]).finalize(user)
    asked: list[float] = []
    answer = asyncio.Event()

    async def fetch(filters: list[Filter], seconds: float) -> list[Event]:
        asked.append(seconds)
        await answer.wait()  # the relays take their time
        return [lists]

    class NoZaps:
        async def last_request_of(self, sender: str) -> str | None:
            return None

    inboxes = InboxRelays(fetch, NoZaps())  # type: ignore[arg-type]
    pubkey = user.public_key().to_hex()
    waiting = [asyncio.ensure_future(inboxes.of(pubkey)) for _ in range(3)]
    await eventually(lambda: _async(len(asked)), lambda n: n >= 1)
    answer.set()
    assert await asyncio.gather(*waiting) == [["wss://dm"]] * 3
    assert asked == [LOOKUP_SECONDS]
    await inboxes.close()
