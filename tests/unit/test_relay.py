"""The relay over real websockets: NIP-01 messages, validation, limits, NIP-11, COUNT."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nostr_sdk import Keys
from websockets.exceptions import ConnectionClosed

from relay import Limits, Relay, RelayError
from tests.unit.relay_support import RawClient, hexkey, ids, sign


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    async with Relay(tmp_path / "relay.sqlite3", "127.0.0.1", 0) as running:
        yield running


@pytest.fixture
async def client(relay: Relay) -> AsyncIterator[RawClient]:
    c = await RawClient.connect(relay.url)
    yield c
    await c.close()


async def test_publish_req_eose_live_close(relay: Relay, client: RawClient) -> None:
    keys = Keys.generate()
    first = sign(keys, 1, "first")
    assert await client.publish(first) == ["OK", first["id"], True, ""]
    assert await client.req("s", {"kinds": [1]}) == [first]
    other = await RawClient.connect(relay.url)
    try:
        assert ids(await other.req("live", {"authors": [hexkey(keys)]})) == [first["id"]]
        second = sign(keys, 1, "second")
        assert (await client.publish(second))[2] is True
        assert await other.live("live") == second
        # The subscription on the publishing connection got it live too.
        assert await client.live("s") == second
        await other.send("CLOSE", "live")
        third = sign(keys, 1, "third")
        assert (await client.publish(third))[2] is True
        await other.nothing(lambda m: m[0] == "EVENT")
    finally:
        await other.close()


async def test_duplicate_is_accepted_once(client: RawClient) -> None:
    event = sign(Keys.generate(), 1, "once")
    assert (await client.publish(event))[2:] == [True, ""]
    ok = await client.publish(event)
    assert ok[2] is True and ok[3].startswith("duplicate:")
    assert len(await client.req("s", {"ids": [event["id"]]})) == 1


async def test_bad_signature_and_bad_id_are_rejected(client: RawClient) -> None:
    keys = Keys.generate()
    forged = sign(keys, 1, "hello")
    other = sign(Keys.generate(), 1, "hello")
    forged["sig"] = other["sig"]
    assert await client.publish(forged) == ["OK", forged["id"], False, "invalid: bad signature"]
    tampered = sign(keys, 1, "original")
    tampered["content"] = "changed"
    ok = await client.publish(tampered)
    assert ok[2] is False and ok[3] == "invalid: id is not the sha256 of the event"
    wrong_key = sign(keys, 1, "x")
    wrong_key["pubkey"] = hexkey(Keys.generate())
    assert (await client.publish(wrong_key))[3].startswith("invalid:")
    assert await client.req("s", {"ids": [forged["id"], tampered["id"]]}) == []


@pytest.mark.parametrize("mutate, reason", [
    (lambda e: e.pop("sig"), "invalid: event lacks sig"),
    (lambda e: e.update(kind="1"), "invalid: kind must be an integer from 0 to 65535"),
    (lambda e: e.update(tags=[["t", 1]]), "invalid: tags must be a list of lists of strings"),
    (lambda e: e.update(pubkey=e["pubkey"].upper()), "invalid: pubkey must be 64 lowercase hex characters"),
])
async def test_malformed_events(client: RawClient, mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    event = sign(Keys.generate(), 1, "x")
    mutate(event)
    ok = await client.publish(event)
    assert ok[2:] == [False, reason]


async def test_malformed_messages_get_notice_and_connection_lives(client: RawClient) -> None:
    for raw in ("not json", '{"an": "object"}', "[]", '["NOPE"]', '["EVENT"]', '["REQ"]',
                "[" * 5000 + "]" * 5000):
        await client.ws.send(raw)
        notice = await client.expect(lambda m: m[0] == "NOTICE")
        assert notice[1].startswith("invalid:"), (raw[:20], notice)
    # A lone surrogate is a valid JSON escape with no UTF-8 form.
    await client.ws.send('["REQ","\\ud800",{"kinds":[1]}]')
    assert await client.expect(lambda m: m[0] == "EOSE") == ["EOSE", "\ud800"]
    await client.ws.send('["COUNT","\\udfff",{"kinds":["x"]}]')
    assert (await client.expect(lambda m: m[0] == "CLOSED"))[1] == "\udfff"
    event = sign(Keys.generate(), 1, "still here")
    assert (await client.publish(event))[2] is True


async def test_filters(client: RawClient) -> None:
    alice, bob = Keys.generate(), Keys.generate()
    now = int(time.time())
    events = [
        sign(alice, 1, "a1", [["t", "ev"]], created_at=now - 30),
        sign(alice, 7, "+", [["p", hexkey(bob)]], created_at=now - 20),
        sign(bob, 1, "b1", [["t", "ev"], ["t", "ln"]], created_at=now - 10),
        sign(bob, 1, "b2", created_at=now),
    ]
    for event in events:
        assert (await client.publish(event))[2] is True
    a1, like, b1, b2 = (e["id"] for e in events)
    assert ids(await client.req("1", {"authors": [hexkey(alice)]})) == [like, a1]
    assert ids(await client.req("2", {"kinds": [1]})) == [b2, b1, a1]
    assert ids(await client.req("3", {"#t": ["ev"]})) == [b1, a1]
    assert ids(await client.req("4", {"#t": ["ln"], "kinds": [1]})) == [b1]
    assert ids(await client.req("5", {"#p": [hexkey(bob)]})) == [like]
    assert ids(await client.req("6", {"since": now - 20, "until": now - 10})) == [b1, like]
    assert ids(await client.req("7", {"kinds": [1], "limit": 2})) == [b2, b1]
    assert ids(await client.req("8", {"ids": [a1, b2]})) == [b2, a1]
    # Two filters: union without duplicates, newest first.
    assert ids(await client.req("9", {"authors": [hexkey(bob)]}, {"#t": ["ev"]})) == [b2, b1, a1]
    assert await client.req("10", {"kinds": []}) == []
    assert await client.req("11", {"kinds": [1], "limit": 0}) == []
    reason = await client.closed("12", {"ids": ["abc"]})
    assert reason.startswith("invalid: ids")
    assert (await client.closed("13", {"#tag": ["x"]})).startswith("invalid: tag filter")


async def test_count(client: RawClient) -> None:
    keys = Keys.generate()
    for i in range(3):
        assert (await client.publish(sign(keys, 1, f"n{i}")))[2] is True
    assert (await client.publish(sign(keys, 7, "+")))[2] is True
    assert await client.count("c", {"authors": [hexkey(keys)], "kinds": [1]}) == 3
    assert await client.count("d", {"authors": [hexkey(keys)]}, {"kinds": [7]}) == 4
    assert await client.count("e", {"kinds": [1], "limit": 1}) == 3


async def test_nip11_document(relay: Relay) -> None:
    http_url = relay.url.replace("ws://", "http://")
    async with httpx.AsyncClient() as http:
        info = await http.get(http_url, headers={"Accept": "application/nostr+json"})
        plain = await http.get(http_url)
    assert info.status_code == 200
    assert info.headers["content-type"] == "application/nostr+json"
    assert info.headers["access-control-allow-origin"] == "*"
    doc = info.json()
    assert doc["name"] == "strom relay" and doc["software"] == "strom"
    assert {1, 9, 11, 40, 42, 45} <= set(doc["supported_nips"])
    limitation = doc["limitation"]
    assert limitation["auth_required"] is False
    assert limitation["max_message_length"] == Limits().max_message_length
    for key in ("max_subscriptions", "max_filters", "max_limit", "default_limit"):
        assert isinstance(limitation[key], int)
    assert plain.status_code == 200 and "nostr" in plain.text


async def test_oversized_message_closes_with_1009(tmp_path: Path) -> None:
    limits = Limits(max_message_length=2048)
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, limits=limits) as relay:
        client = await RawClient.connect(relay.url)
        await client.publish(sign(Keys.generate(), 1, "x" * 1000))
        await client.send("EVENT", sign(Keys.generate(), 1, "x" * 3000))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await client.ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        # The relay keeps serving others.
        again = await RawClient.connect(relay.url)
        assert (await again.publish(sign(Keys.generate(), 1, "small")))[2] is True
        await again.close()


async def test_subscription_and_filter_limits(tmp_path: Path) -> None:
    limits = Limits(max_subscriptions=3, max_filters=2)
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, limits=limits) as relay:
        client = await RawClient.connect(relay.url)
        for i in range(3):
            await client.req(f"s{i}", {"kinds": [1]})
        assert (await client.closed("s3", {"kinds": [1]})).startswith("rate-limited:")
        # Replacing an existing subscription is fine, and closing one makes room.
        await client.req("s0", {"kinds": [2]})
        await client.send("CLOSE", "s1")
        await client.req("s3", {"kinds": [1]})
        reason = await client.closed("s0", {}, {}, {})
        assert reason.startswith("invalid: at most 2 filters")
        assert (await client.closed("s0")).startswith("invalid:")
        await client.close()


async def test_rate_limit_and_trusted_authors(tmp_path: Path) -> None:
    bot = Keys.generate()
    limits = Limits(events_per_second=1, event_burst=5)
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, limits=limits,
                     trusted_pubkeys=lambda: {hexkey(bot)}) as relay:
        client = await RawClient.connect(relay.url)
        stranger = Keys.generate()
        results = [await client.publish(sign(stranger, 1, f"{i}")) for i in range(8)]
        assert [r[2] for r in results[:5]] == [True] * 5
        assert all(r[2] is False and r[3].startswith("rate-limited:") for r in results[5:])
        # The bot, on the same throttled connection, is never limited.
        bot_results = [await client.publish(sign(bot, 1, f"{i}")) for i in range(50)]
        assert all(r[2] is True for r in bot_results)
        # Another connection has its own bucket.
        fresh = await RawClient.connect(relay.url)
        assert (await fresh.publish(sign(stranger, 1, "again")))[2] is True
        await client.close()
        await fresh.close()


async def test_future_and_auth_kind_events_refused(client: RawClient) -> None:
    keys = Keys.generate()
    future = sign(keys, 1, "later", created_at=int(time.time()) + 3600)
    assert (await client.publish(future))[2:] == [False, "invalid: created_at is too far in the future"]
    auth = sign(keys, 22242, tags=[["challenge", "x"]])
    assert (await client.publish(auth))[3].startswith("invalid: kind 22242")


async def test_ephemeral_events_are_relayed_not_stored(relay: Relay, client: RawClient) -> None:
    keys = Keys.generate()
    listener = await RawClient.connect(relay.url)
    await listener.req("e", {"kinds": [20001]})
    event = sign(keys, 20001, "now only")
    assert (await client.publish(event))[2] is True
    assert await listener.live("e") == event
    assert await client.req("again", {"kinds": [20001]}) == []
    await listener.close()


async def test_port_in_use_is_a_one_line_error(relay: Relay, tmp_path: Path) -> None:
    with pytest.raises(RelayError, match=r"cannot listen .* set \[relay\] port"):
        await Relay(tmp_path / "other.sqlite3", "127.0.0.1", relay.port).start()


async def test_concurrent_duplicates_stored_and_broadcast_once(relay: Relay) -> None:
    listener = await RawClient.connect(relay.url)
    await listener.req("l", {"kinds": [1]})
    clients = [await RawClient.connect(relay.url) for _ in range(6)]
    event = sign(Keys.generate(), 1, "race")
    oks = await asyncio.gather(*(c.publish(event) for c in clients))
    assert all(ok[2] is True for ok in oks)
    assert sum(ok[3] == "" for ok in oks) == 1
    assert await listener.live("l") == event
    await listener.nothing(lambda m: m[0] == "EVENT")
    assert await listener.count("n", {"ids": [event["id"]]}) == 1
    for c in (listener, *clients):
        await c.close()


async def test_many_events_over_one_connection_are_all_stored(relay: Relay,
                                                              client: RawClient) -> None:
    keys = Keys.generate()
    events = [sign(keys, 1, f"bulk {i}") for i in range(150)]
    for event in events:
        await client.ws.send(json.dumps(["EVENT", event]))
    oks = [await client.expect(lambda m: m[0] == "OK") for _ in events]
    # Rate limit: a burst of 200 by default, so all 150 pass.
    assert all(ok[2] is True for ok in oks)
    assert {ok[1] for ok in oks} == {e["id"] for e in events}
    stored = await client.req("all", {"authors": [hexkey(keys)], "limit": 5000})
    assert len(stored) == 150


async def test_large_stored_result_is_sent_in_order(tmp_path: Path) -> None:
    bot = Keys.generate()
    limits = Limits(max_limit=5000, max_events_per_req=5000)
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, limits=limits,
                     trusted_pubkeys=lambda: {hexkey(bot)}) as relay:
        client = await RawClient.connect(relay.url)
        now = int(time.time())
        events = [sign(bot, 1, f"{i}", created_at=now - i) for i in range(1500)]
        for event in events:
            await client.ws.send(json.dumps(["EVENT", event]))
        for _ in events:
            assert (await client.expect(lambda m: m[0] == "OK"))[2] is True
        got = await client.req("all", {"authors": [hexkey(bot)], "limit": 5000})
        assert ids(got) == ids(events)
        await client.close()


async def test_slow_reader_is_disconnected(tmp_path: Path) -> None:
    bot = Keys.generate()
    limits = Limits(max_pending_messages=50)
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, limits=limits,
                     trusted_pubkeys=lambda: {hexkey(bot)}) as relay:
        slow = await RawClient.connect(relay.url)
        await slow.req("firehose", {"kinds": [1]})
        publisher = await RawClient.connect(relay.url)
        events = [sign(bot, 1, f"{i:04d}" + "x" * 8000) for i in range(800)]
        for event in events:
            await publisher.ws.send(json.dumps(["EVENT", event]))
        for _ in events:
            assert (await publisher.expect(lambda m: m[0] == "OK"))[2] is True
        received = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received += json.loads(await slow.ws.recv())[0] == "EVENT"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert received < len(events)
        # The publisher, reading its messages, was not affected.
        assert (await publisher.publish(sign(bot, 1, "after")))[2] is True
        await publisher.close()


def _random_json(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 2**63, 1.5, 10**30])
    if choice == 3:
        return rng.choice(["", "x", "0" * 64, "#t", "\ud800", "EVENT"])
    if choice in (4, 5):
        return rng.choice(["ids", "authors", "kinds", "#e", "since", "limit", "tags"])
    if choice in (6, 7):
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["id", "pubkey", "kinds", "#p", "limit", "tags", "content", "until", "sig"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


async def test_garbage_never_breaks_the_connection(client: RawClient,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(1234)
    for _ in range(400):
        kind = rng.choice(["EVENT", "REQ", "CLOSE", "COUNT", "AUTH"])
        message = [kind, *(_random_json(rng) for _ in range(rng.randrange(4)))]
        await client.ws.send(json.dumps(message))
    keys = Keys.generate()
    assert (await client.publish(sign(keys, 1, "alive")))[2] is True
    assert "failed to handle" not in caplog.text
