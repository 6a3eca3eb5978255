"""Strom's own relay gets the bots' events over a connection of their own (`bots/own_relay.py`):
what its `OK` says reaches the caller, an independent client (nostr-sdk) finds the events
there and verifies them, and a lost connection is opened again."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from nostr_sdk import EventBuilder, Filter, Keys, Kind, uniffi_set_event_loop

from bots import events, relay_lanes
from bots.client import NostrClient
from bots.signed import SignedEvent, sign
from relay import Relay
from tests.nostr.test_event_sizes import worst_charge_point

KEYS = Keys.generate()


async def _ignore(_: object) -> None:
    return None


@asynccontextmanager
async def own_relay(path: Path, port: int = 0,
                    allowed: Callable[[], set[str]] | None = None) -> AsyncIterator[Relay]:
    ours = {KEYS.public_key().to_hex()}
    async with Relay(path, "127.0.0.1", port, write_policy="strom",
                     allowed_pubkeys=allowed or (lambda: ours),
                     trusted_pubkeys=lambda: ours) as relay:
        yield relay


@asynccontextmanager
async def publisher(url: str) -> AsyncIterator[NostrClient]:
    """The bots' client with `url` as strom's own relay."""
    uniffi_set_event_loop(asyncio.get_running_loop())
    client = NostrClient([url], lambda: [KEYS], _ignore, unmetered=[url])
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def stored(relay: Relay) -> list[dict[str, object]]:
    """What is on the relay's disk (an OK true was sent only after this commit)."""
    with sqlite3.connect(relay.store.path) as db:
        return [json.loads(raw) for (raw,) in db.execute("SELECT raw FROM events")]


async def test_a_status_is_stored_before_publish_returns_and_verifies_elsewhere(
        tmp_path: Path) -> None:
    cp, market = worst_charge_point()
    status = events.status(KEYS, cp, int(time.time()), market)
    async with own_relay(tmp_path / "r.sqlite3") as relay, publisher(relay.url) as client:
        assert await client.publish(status)
        assert [e["id"] for e in stored(relay)] == [status.id]
        [state] = client.relay_states()
        assert (state["sent"], state["accepted"], state["refused"]) == (1, 1, 0)
        # An independent client reads it back from the relay and checks it.
        async with publisher(relay.url) as reader:
            found = await reader.fetch([Filter().kinds([Kind(events.STATUS)])])
        assert [e.id().to_hex() for e in found] == [status.id] and found[0].verify()


async def test_duplicates_count_as_accepted_and_only_the_newest_version_stays(
        tmp_path: Path) -> None:
    now = int(time.time())
    newer = sign(KEYS, 30333, "newer", [["d", "cp-1"]], now)
    older = sign(KEYS, 30333, "older", [["d", "cp-1"]], now - 10)
    async with own_relay(tmp_path / "r.sqlite3") as relay, publisher(relay.url) as client:
        assert await client.publish(newer)
        assert await client.publish(newer)  # "duplicate:": it is there
        assert await client.publish(older)  # "duplicate: a newer version …": not stored
        assert [e["content"] for e in stored(relay)] == ["newer"]


async def test_a_refusal_reaches_the_caller_with_its_reason(tmp_path: Path) -> None:
    async with own_relay(tmp_path / "r.sqlite3", allowed=set) as relay, \
            publisher(relay.url) as client:
        assert not await client.publish(sign(KEYS, 1, "not ours to store", []))
        [state] = client.relay_states()
        assert state["refused"] == 1 and state["last_refusal"] == "restricted"
        assert stored(relay) == []


async def test_a_lost_connection_is_opened_again(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_lanes, "REST_FIRST", 0.2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "r.sqlite3"
    async with own_relay(path, port) as relay, publisher(relay.url) as client:
        assert await client.publish(sign(KEYS, 1, "first", []))
        await relay.close()  # the relay goes away, and comes back
        late = asyncio.create_task(client.publish(sign(KEYS, 1, "second", [])))
        await asyncio.sleep(0.3)
        async with own_relay(path, port) as again:
            assert await late
            assert sorted(e["content"] for e in stored(again)) == ["first", "second"]
        [state] = client.relay_states()
        assert state["unanswered"] >= 1 and state["accepted"] == 2


async def test_an_event_nostr_sdk_built_goes_the_same_way(tmp_path: Path) -> None:
    built = EventBuilder(Kind(1), "built by nostr-sdk").finalize(KEYS)
    async with own_relay(tmp_path / "r.sqlite3") as relay, publisher(relay.url) as client:
        assert await client.publish(built)
        assert [e["id"] for e in stored(relay)] == [SignedEvent.of(built).id]
