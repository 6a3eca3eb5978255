"""The relay with nostr-sdk's Client: the library strom's bots use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import nostr_sdk as ns
import pytest

from relay import Relay


class KeyAuthenticator(ns.Authenticator):
    """NIP-42 for nostr-sdk's Client: answers the relay's challenge with one key."""

    def __init__(self, keys: ns.Keys) -> None:
        self.keys = keys

    async def make_auth_event(self, relay_url: ns.RelayUrl, challenge: str) -> ns.Event | None:
        tags = [ns.Tag.parse(["relay", str(relay_url)]), ns.Tag.parse(["challenge", challenge])]
        return ns.EventBuilder(ns.Kind(22242), "").tags(tags).finalize(self.keys)


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    ns.uniffi_set_event_loop(asyncio.get_running_loop())
    async with Relay(tmp_path / "relay.sqlite3", "127.0.0.1", 0) as running:
        yield running


async def _client(relay: Relay, builder: ns.ClientBuilder | None = None) -> ns.Client:
    client = (builder or ns.ClientBuilder()).build()
    await client.add_relay(ns.RelayUrl.parse(relay.url))
    await client.connect()
    return client


async def test_sdk_publish_and_subscribe(relay: Relay) -> None:
    ns.uniffi_set_event_loop(asyncio.get_running_loop())
    cp = ns.Keys.generate()
    publisher = await _client(relay)
    subscriber = await _client(relay)
    try:
        notifications = subscriber.notifications()
        status_filter = ns.Filter().kind(ns.Kind(30333)).author(cp.public_key())
        await subscriber.subscribe(ns.ReqTarget.auto([status_filter]))
        await asyncio.sleep(0.2)
        status = ns.EventBuilder(ns.Kind(30333), "{}").tags([
            ns.Tag.parse(["d", "cp-1"]), ns.Tag.parse(["status", "Available"])]).finalize(cp)
        output = await publisher.send_event(status)
        assert [str(u) for u in output.success] == [relay.url] and not output.failed

        async def next_event() -> ns.Event:
            while True:
                note = await notifications.next()
                assert note is not None
                if note.is_new_event():
                    return note.event

        received = await asyncio.wait_for(next_event(), 5)
        assert received.id().to_hex() == status.id().to_hex()
        assert received.verify()
        fetched = await publisher.fetch_events(ns.ReqTarget.auto([status_filter]),
                                               timedelta(seconds=5))
        assert [e.id().to_hex() for e in fetched] == [status.id().to_hex()]
        stale = ns.EventBuilder(ns.Kind(30333), "{}").tags([ns.Tag.parse(["d", "cp-1"])]) \
            .custom_created_at(ns.Timestamp.from_secs(status.created_at().as_secs() - 60)) \
            .finalize(cp)
        refused = await publisher.send_event(stale)
        assert not refused.success
        assert list(refused.failed.values())[0].startswith("duplicate:")
    finally:
        await publisher.shutdown()
        await subscriber.shutdown()


async def test_sdk_client_authenticates_to_read_its_dms(relay: Relay) -> None:
    ns.uniffi_set_event_loop(asyncio.get_running_loop())
    cp, driver = ns.Keys.generate(), ns.Keys.generate()
    sender = await _client(relay)
    dm = ns.EventBuilder(ns.Kind(4), "secret?iv=abc").tags(
        [ns.Tag.parse(["p", cp.public_key().to_hex()])]).finalize(driver)
    gift = ns.EventBuilder(ns.Kind(1059), "wrapped").tags(
        [ns.Tag.parse(["p", cp.public_key().to_hex()])]).finalize(ns.Keys.generate())
    for event in (dm, gift):
        assert (await sender.send_event(event)).success
    dm_filter = ns.Filter().kinds([ns.Kind(4), ns.Kind(1059)]).pubkey(cp.public_key())
    bot = await _client(relay, ns.ClientBuilder().authenticator(KeyAuthenticator(cp)))
    stranger = await _client(relay, ns.ClientBuilder().authenticator(
        KeyAuthenticator(ns.Keys.generate())))
    try:
        got = await bot.fetch_events(ns.ReqTarget.auto([dm_filter]), timedelta(seconds=5))
        assert {e.id().to_hex() for e in got} == {dm.id().to_hex(), gift.id().to_hex()}
        nothing = await stranger.fetch_events(ns.ReqTarget.auto([dm_filter]), timedelta(seconds=2))
        assert nothing == []
    finally:
        for client in (sender, bot, stranger):
            await client.shutdown()
