"""REQ and COUNT limits of the relay: it runs in strom's event loop, so a client asking for
everything over and over must not slow LNURL and OCPP. Per-connection and per-address rates,
bounded query cost (tag values, events per REQ, time), strom's own bots exempt."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nostr_sdk import Keys

from relay import Relay
from relay.event import parse_event
from relay.limits import Limits
from relay.store import EventStore
from tests.unit.relay_support import ClosedError, RawClient, hexkey, sign

EVERYTHING = {"kinds": [1], "limit": 1000}


async def fill(store: EventStore, count: int) -> None:
    """`count` kind-1 notes, straight into the store (publishing them would be rate limited)."""
    author = Keys.generate()
    saved = [store.save(parse_event(sign(author, 1, f"note {i}", tags=[["t", f"tag{i % 7}"]])))
             for i in range(count)]
    assert all(result.accepted for result in await asyncio.gather(*saved))


async def outcome(client: RawClient, sub_id: str, *filters: dict) -> str:
    """"EOSE" when the REQ was served, else the CLOSED reason."""
    try:
        await client.req(sub_id, *filters)
    except ClosedError as exc:
        return str(exc)
    return "EOSE"


async def test_reqs_and_counts_are_rate_limited_per_connection(tmp_path: Path) -> None:
    limits = Limits(reqs_per_second=0.01, req_burst=3)
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, limits=limits) as relay:
        client = await RawClient.connect(relay.url)
        answers = [await outcome(client, "s", {"kinds": [1]}) for _ in range(3)]
        assert answers == ["EOSE"] * 3
        assert (await outcome(client, "s", {"kinds": [1]})).startswith("rate-limited:")
        try:
            await client.count("c", {"kinds": [1]})
            raise AssertionError("COUNT was not limited")
        except ClosedError as exc:
            assert str(exc).startswith("rate-limited:")
        # Another connection has its own bucket.
        other = await RawClient.connect(relay.url)
        assert await outcome(other, "s", {"kinds": [1]}) == "EOSE"
        await client.close()
        await other.close()


async def test_reqs_are_rate_limited_per_address(tmp_path: Path) -> None:
    limits = Limits(address_reqs_per_second=0.01, address_req_burst=4)
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, limits=limits) as relay:
        clients = [await RawClient.connect(relay.url) for _ in range(3)]
        answers = [await outcome(c, "s", {"kinds": [1]}) for c in clients for _ in range(2)]
        assert answers[:4] == ["EOSE"] * 4
        assert all(a.startswith("rate-limited:") for a in answers[4:]), answers
        for client in clients:
            await client.close()


async def test_strom_bots_authenticated_as_trusted_keys_are_not_limited(tmp_path: Path) -> None:
    bot = Keys.generate()
    limits = Limits(reqs_per_second=0.01, req_burst=2, max_query_ms=0)
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, limits=limits,
                     trusted_pubkeys=lambda: {hexkey(bot)}) as relay:
        await fill(relay.store, 300)
        client = await RawClient.connect(relay.url)
        assert (await client.auth(bot, relay.url))[2] is True
        for n in range(10):
            assert len(await client.req(f"s{n}", EVERYTHING)) == 300
        await client.close()


async def test_query_cost_is_bounded(tmp_path: Path) -> None:
    limits = Limits(max_tag_values=5, max_events_per_req=50)
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0, limits=limits) as relay:
        await fill(relay.store, 120)
        client = await RawClient.connect(relay.url)
        assert len(await client.req("all", EVERYTHING, {"#t": ["tag1"]})) == 50
        many = {"#t": [f"tag{i}" for i in range(3)], "#p": ["a", "b", "c"]}
        assert (await outcome(client, "tags", many)) == "invalid: at most 5 tag values in one filter"
        filters = [{"kinds": [n]} for n in range(11)]
        assert (await outcome(client, "filters", *filters)).startswith("invalid: at most 10 filters")
        await client.close()


async def test_a_query_running_too_long_is_cut_short(tmp_path: Path) -> None:
    async with Relay(tmp_path / "r.sqlite3", "127.0.0.1", 0,
                     limits=Limits(max_query_ms=0)) as relay:
        await fill(relay.store, 300)
        client = await RawClient.connect(relay.url)
        reason = await outcome(client, "slow", EVERYTHING)
        assert reason.startswith("error: the query took longer than 0 ms")
        try:
            await client.count("c", {"kinds": [1]})
            raise AssertionError("COUNT was not cut short")
        except ClosedError as exc:
            assert str(exc).startswith("error: the query took longer")
        # The connection and the relay go on serving.
        assert await outcome(client, "cheap", {"ids": ["0" * 64]}) == "EOSE"
        await client.close()
