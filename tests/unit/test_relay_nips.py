"""Relay NIPs beyond the basics: replacement (01/33), deletion (09), expiration (40),
AUTH gating (42), the "strom" write policy and persistence across restarts."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nostr_sdk import Keys

from relay import Relay
from tests.unit.relay_support import ClosedError, RawClient, hexkey, ids, newest_first, sign


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    async with Relay(tmp_path / "relay.sqlite3", "127.0.0.1", 0) as running:
        yield running


@pytest.fixture
async def client(relay: Relay) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(relay.url)
    yield c
    await c.close()


async def test_replaceable_newer_wins_older_loses(client: RawClient) -> None:
    keys = Keys.generate()
    now = int(time.time())
    newer = sign(keys, 0, '{"name":"new"}', created_at=now)
    older = sign(keys, 0, '{"name":"old"}', created_at=now - 60)
    assert (await client.publish(newer))[2] is True
    ok = await client.publish(older)
    assert ok[2] is False and ok[3].startswith("duplicate:")
    newest = sign(keys, 0, '{"name":"newest"}', created_at=now + 1)
    assert (await client.publish(newest))[2] is True
    assert await client.req("p", {"kinds": [0], "authors": [hexkey(keys)]}) == [newest]
    # 10000-19999 are replaceable too, per kind.
    relays = sign(keys, 10002, tags=[["r", "wss://a"]], created_at=now)
    dm_relays = sign(keys, 10050, tags=[["relay", "wss://b"]], created_at=now)
    for event in (relays, dm_relays):
        assert (await client.publish(event))[2] is True
    assert len(await client.req("r", {"authors": [hexkey(keys)]})) == 3


async def test_replaceable_tie_keeps_lowest_id(client: RawClient) -> None:
    keys = Keys.generate()
    now = int(time.time())
    a, b = (sign(keys, 3, f"contacts {i}", created_at=now) for i in range(2))
    low, high = sorted((a, b), key=lambda e: e["id"])
    assert (await client.publish(high))[2] is True
    assert (await client.publish(low))[2] is True
    assert (await client.publish(high))[2] is False
    assert await client.req("c", {"kinds": [3], "authors": [hexkey(keys)]}) == [low]


async def test_addressable_replaced_per_d_tag(relay: Relay, client: RawClient) -> None:
    cp = Keys.generate()
    now = int(time.time())
    listener = await RawClient.connect(relay.url)
    await listener.req("status", {"kinds": [30333]})
    one_old = sign(cp, 30333, "Available", [["d", "cp-1"]], created_at=now - 10)
    two = sign(cp, 30333, "Charging", [["d", "cp-2"]], created_at=now - 10)
    one_new = sign(cp, 30333, "Charging", [["d", "cp-1"]], created_at=now)
    for event in (one_old, two, one_new):
        assert (await client.publish(event))[2] is True
        assert await listener.live("status") == event
    stale = sign(cp, 30333, "Faulted", [["d", "cp-1"]], created_at=now - 5)
    assert (await client.publish(stale))[2] is False
    await listener.nothing(lambda m: m[0] == "EVENT")
    assert ids(await client.req("s", {"kinds": [30333], "authors": [hexkey(cp)]})) == \
        [one_new["id"], two["id"]]
    assert ids(await client.req("d", {"#d": ["cp-1"]})) == [one_new["id"]]
    # Another author's same d tag is another address.
    other = sign(Keys.generate(), 30333, "Available", [["d", "cp-1"]], created_at=now - 100)
    assert (await client.publish(other))[2] is True
    await listener.close()


async def test_deletion_by_author_only(client: RawClient) -> None:
    alice, mallory = Keys.generate(), Keys.generate()
    note = sign(alice, 1, "regret")
    keep = sign(alice, 1, "keep")
    for event in (note, keep):
        assert (await client.publish(event))[2] is True
    forged = sign(mallory, 5, "", [["e", note["id"]]])
    assert (await client.publish(forged))[2] is True
    assert ids(await client.req("a", {"ids": [note["id"]]})) == [note["id"]]
    deletion = sign(alice, 5, "oops", [["e", note["id"]]])
    assert (await client.publish(deletion))[2] is True
    assert await client.req("b", {"ids": [note["id"]]}) == []
    assert ids(await client.req("c", {"authors": [hexkey(alice)]})) == newest_first(deletion, keep)
    ok = await client.publish(note)
    assert ok[2] is False and ok[3].startswith("blocked:")
    # Deleting a deletion has no effect.
    assert (await client.publish(sign(alice, 5, "", [["e", deletion["id"]]])))[2] is True
    assert ids(await client.req("d", {"ids": [deletion["id"]]})) == [deletion["id"]]


async def test_deletion_of_an_address(client: RawClient) -> None:
    cp = Keys.generate()
    now = int(time.time())
    status = sign(cp, 30333, "Available", [["d", "cp-1"]], created_at=now - 10)
    assert (await client.publish(status))[2] is True
    address = f"30333:{hexkey(cp)}:cp-1"
    foreign = sign(Keys.generate(), 5, "", [["a", address]], created_at=now)
    assert (await client.publish(foreign))[2] is True
    assert len(await client.req("x", {"#d": ["cp-1"]})) == 1
    assert (await client.publish(sign(cp, 5, "", [["a", address]], created_at=now - 5)))[2]
    assert await client.req("y", {"#d": ["cp-1"]}) == []
    older = sign(cp, 30333, "Charging", [["d", "cp-1"]], created_at=now - 6)
    assert (await client.publish(older))[2] is False
    newer = sign(cp, 30333, "Charging", [["d", "cp-1"]], created_at=now)
    assert (await client.publish(newer))[2] is True
    assert ids(await client.req("z", {"#d": ["cp-1"]})) == [newer["id"]]


async def test_expiration(relay: Relay, client: RawClient) -> None:
    keys = Keys.generate()
    now = int(time.time())
    expired = sign(keys, 1, "gone", [["expiration", str(now - 1)]])
    assert (await client.publish(expired))[2:] == [False, "invalid: event has expired"]
    bad = sign(keys, 1, "bad", [["expiration", "soon"]])
    assert (await client.publish(bad))[3] == "invalid: expiration tag must be a unix timestamp"
    short = sign(keys, 1, "short-lived", [["expiration", str(now + 2)]])
    lasting = sign(keys, 1, "lasting", [["expiration", str(now + 3600)]])
    for event in (short, lasting):
        assert (await client.publish(event))[2] is True
    assert len(await client.req("a", {"authors": [hexkey(keys)]})) == 2
    await asyncio.sleep(now + 2.1 - time.time())
    assert ids(await client.req("b", {"authors": [hexkey(keys)]})) == [lasting["id"]]
    assert await client.count("c", {"authors": [hexkey(keys)]}) == 1
    assert await relay.store.purge_expired() == 1
    with sqlite3.connect(relay.store.path) as db:
        stored = {row[0] for row in db.execute("SELECT id FROM events")}
        orphan_tags = db.execute("SELECT COUNT(*) FROM tags WHERE event_seq NOT IN "
                                 "(SELECT seq FROM events)").fetchone()[0]
    assert stored == {lasting["id"]} and orphan_tags == 0


async def test_purge_runs_by_itself(tmp_path: Path) -> None:
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, purge_interval=0.2) as relay:
        client = await RawClient.connect(relay.url)
        event = sign(Keys.generate(), 1, "x", [["expiration", str(int(time.time()) + 1)]])
        assert (await client.publish(event))[2] is True
        await asyncio.sleep(2.0)
        with sqlite3.connect(relay.store.path) as db:
            assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
        await client.close()


async def test_dms_need_auth_as_author_or_recipient(relay: Relay, client: RawClient) -> None:
    alice, bob, eve = Keys.generate(), Keys.generate(), Keys.generate()
    dm = sign(alice, 4, "encrypted?iv=x", [["p", hexkey(bob)]])
    wrap = sign(Keys.generate(), 1059, "sealed", [["p", hexkey(bob)]])
    note = sign(alice, 1, "public")
    for event in (dm, wrap, note):
        assert (await client.publish(event))[2] is True
    reason = await client.closed("dm", {"kinds": [4], "#p": [hexkey(bob)]})
    assert reason.startswith("auth-required:")
    assert (await client.closed("gw", {"kinds": [1, 1059]})).startswith("auth-required:")
    with pytest.raises(ClosedError, match="auth-required"):
        await client.count("n", {"kinds": [4]})
    # Without kinds, protected events are left out silently.
    assert ids(await client.req("all", {})) == [note["id"]]
    assert await client.count("n2", {}) == 1

    as_bob = await RawClient.connect(relay.url)
    assert (await as_bob.auth(bob, relay.url))[2] is True
    assert ids(await as_bob.req("inbox", {"kinds": [4, 1059]})) == newest_first(dm, wrap)
    as_alice = await RawClient.connect(relay.url)
    assert (await as_alice.auth(alice, relay.url))[2] is True
    assert ids(await as_alice.req("sent", {"kinds": [4]})) == [dm["id"]]
    as_eve = await RawClient.connect(relay.url)
    assert (await as_eve.auth(eve, relay.url))[2] is True
    assert await as_eve.req("snoop", {"kinds": [4, 1059]}) == []

    # Live: only the recipient gets the next DM.
    await as_eve.req("live", {"kinds": [4]})
    await as_bob.req("live", {"kinds": [4]})
    await client.req("live", {})
    second = sign(alice, 4, "again?iv=y", [["p", hexkey(bob)]])
    assert (await client.publish(second))[2] is True
    assert await as_bob.live("live") == second
    await as_eve.nothing(lambda m: m[0] == "EVENT")
    await client.nothing(lambda m: m[0] == "EVENT" and m[1] == "live")
    for c in (as_bob, as_alice, as_eve):
        await c.close()


async def test_one_connection_may_authenticate_several_keys(relay: Relay, client: RawClient) -> None:
    cp1, cp2 = Keys.generate(), Keys.generate()
    sender = Keys.generate()
    for cp in (cp1, cp2):
        assert (await client.publish(sign(sender, 4, "hi?iv=z", [["p", hexkey(cp)]])))[2]
    bot = await RawClient.connect(relay.url)
    assert (await bot.auth(cp1, relay.url))[2] is True
    assert len(await bot.req("a", {"kinds": [4]})) == 1
    assert (await bot.auth(cp2, relay.url.replace("127.0.0.1", "localhost") + "/"))[2] is True
    assert len(await bot.req("b", {"kinds": [4]})) == 2
    await bot.close()


async def test_bad_auth_is_refused(relay: Relay, client: RawClient) -> None:
    keys = Keys.generate()
    wrong_challenge = await client.auth(keys, relay.url, challenge="not-the-challenge")
    assert wrong_challenge[2:] == [False, "invalid: challenge does not match"]
    wrong_relay = await client.auth(keys, "wss://elsewhere.example")
    assert wrong_relay[2:] == [False, "invalid: relay tag does not name this relay"]
    stale = sign(keys, 22242, tags=[["relay", relay.url], ["challenge", client.challenge]],
                 created_at=int(time.time()) - 3600)
    await client.send("AUTH", stale)
    assert (await client.expect(lambda m: m[0] == "OK"))[3] == "invalid: created_at is too far from now"
    note = sign(keys, 1, "not an auth")
    await client.send("AUTH", note)
    assert (await client.expect(lambda m: m[0] == "OK"))[3] == "invalid: AUTH needs a kind 22242 event"
    assert (await client.closed("dm", {"kinds": [4]})).startswith("auth-required:")


async def test_write_policy_strom(tmp_path: Path) -> None:
    cp, driver, stranger = Keys.generate(), Keys.generate(), Keys.generate()
    allowed = {hexkey(cp)}
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, write_policy="strom",
                     allowed_pubkeys=lambda: allowed) as relay:
        client = await RawClient.connect(relay.url)
        assert (await client.publish(sign(cp, 30333, "Available", [["d", "cp"]])))[2] is True
        to_cp = sign(driver, 1059, "wrapped", [["p", hexkey(cp)]])
        assert (await client.publish(to_cp))[2] is True
        ok = await client.publish(sign(stranger, 1, "spam"))
        assert ok[2] is False and ok[3].startswith("restricted:")
        # The set is asked each time: a charge point added later may publish at once.
        allowed.add(hexkey(stranger))
        assert (await client.publish(sign(stranger, 1, "welcome")))[2] is True
        await client.close()
    with pytest.raises(ValueError, match="allowed_pubkeys"):
        Relay(tmp_path / "x.sqlite3", write_policy="strom")


async def test_events_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "data" / "relay.sqlite3"
    keys = Keys.generate()
    now = int(time.time())
    note = sign(keys, 1, "durable")
    status = sign(keys, 30333, "new", [["d", "cp"]], created_at=now)
    async with Relay(path, "127.0.0.1", 0) as relay:
        client = await RawClient.connect(relay.url)
        for event in (note, status, sign(keys, 5, "", [["e", "0" * 64]])):
            assert (await client.publish(event))[2] is True
        await client.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    async with Relay(path, "127.0.0.1", 0) as relay:
        client = await RawClient.connect(relay.url)
        assert ids(await client.req("a", {"ids": [note["id"], status["id"]]})) == \
            newest_first(note, status)
        assert len(await client.req("b", {"authors": [hexkey(keys)]})) == 3
        old = sign(keys, 30333, "old", [["d", "cp"]], created_at=now - 1)
        assert (await client.publish(old))[2] is False
        await client.close()


async def test_auth_with_the_public_url(tmp_path: Path) -> None:
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0,
                     public_url="wss://relay.example.com/") as relay:
        client = await RawClient.connect(relay.url)
        keys = Keys.generate()
        assert (await client.auth(keys, "wss://Relay.Example.com"))[2] is True
        assert (await client.auth(keys, "wss://other.example.com"))[2] is False
        await client.close()
