"""`OK false` refusals drive what strom does, per relay (issue 19, "Refusals understood").

Two relays written here, which strom does not own: one accepts everything, the other refuses
with one NIP-01 machine-readable prefix. What a refusal means must stay with that relay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from nostr_sdk import Event, EventBuilder, Keys, Kind
from websockets.asyncio.server import ServerConnection, serve

from bots import relay_lanes
from bots.client import NostrClient
from bots.relay_lanes import RelayLane
from bots.signed import SignedEvent, sign
from tests.nostr.conftest import client_on
from tests.polling import eventually


class Relay:
    """A minimal relay: answers every EVENT with `refusal` (or OK true). An auth-required
    relay sends its NIP-42 challenge with its first refusal, and accepts once authenticated."""

    def __init__(self, refusal: str | None = None) -> None:
        self.refusal = refusal
        self.received: list[str] = []  # event ids, in order
        self.accepted: list[str] = []
        self.url = ""

    async def handle(self, ws: ServerConnection) -> None:
        authed = False
        async for raw in ws:
            message: list[Any] = json.loads(raw)
            if message[0] == "AUTH":
                authed = True
                await ws.send(json.dumps(["OK", message[1]["id"], True, ""]))
            elif message[0] == "EVENT":
                self.received.append(message[1]["id"])
                refused = self.refusal is not None and not (
                    authed and self.refusal.startswith("auth-required"))
                await ws.send(json.dumps(["OK", message[1]["id"], not refused,
                                          self.refusal if refused else ""]))
                if not refused:
                    self.accepted.append(message[1]["id"])
                elif self.refusal and self.refusal.startswith("auth-required"):
                    await ws.send(json.dumps(["AUTH", "challenge-1"]))
            elif message[0] == "REQ":
                await ws.send(json.dumps(["EOSE", message[1]]))


async def start(relay: Relay) -> Any:
    server = await serve(relay.handle, "127.0.0.1", 0)
    relay.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    return server


@pytest.fixture
async def keys() -> Keys:
    return Keys.generate()


@asynccontextmanager
async def connected(keys: Keys, *relays: Relay) -> AsyncIterator[NostrClient]:
    servers = [await start(r) for r in relays]
    try:
        async with client_on(*(r.url for r in relays), keys=keys) as client:
            yield client
    finally:
        for server in servers:
            server.close()


def note(keys: Keys, text: str) -> Event:
    return EventBuilder(Kind(1), text).finalize(keys)


async def publish_when_connected(client: NostrClient, keys: Keys, *relays: Relay) -> None:
    """The first event, once every relay has it (connections open in the background)."""
    async def sent() -> bool:
        await client.publish(note(keys, f"hello {time.monotonic()}"))
        return all(r.received for r in relays)
    await eventually(sent, bool)


async def test_rate_limited_relay_rests_and_slows_nothing_else(keys: Keys) -> None:
    good, busy = Relay(), Relay("rate-limited: slow down")
    async with connected(keys, good, busy) as client:
        await publish_when_connected(client, keys, good, busy)
        started = time.monotonic()
        statuses = [note(keys, f"status {n}") for n in range(5)]
        for event in statuses:
            assert await client.publish(event)
        assert time.monotonic() - started < 1.0
        assert len(good.received) >= 6
        # Resting: none of these is offered to the busy relay for a while (a "hello" of the
        # connecting loop may still have reached it after its refusal).
        assert not {e.id().to_hex() for e in statuses} & set(busy.received)


async def test_duplicate_counts_as_accepted(keys: Keys) -> None:
    seen = Relay("duplicate: already have this event")
    async with connected(keys, seen) as client:
        await publish_when_connected(client, keys, seen)
        assert await client.publish(note(keys, "again"))


@pytest.mark.parametrize("refusal", ["invalid: bad tag", "blocked: not on the list",
                                     "pow: difficulty 30 needed", "restricted: members only"])
async def test_final_refusals_are_dropped_with_a_log_line(
        keys: Keys, refusal: str, caplog: pytest.LogCaptureFixture) -> None:
    good, strict = Relay(), Relay(refusal)
    async with connected(keys, good, strict) as client:
        await publish_when_connected(client, keys, good, strict)
        with caplog.at_level(logging.WARNING, logger="bots.relay_lanes"):
            event = note(keys, "refused")
            assert await client.publish(event)
            assert await client.publish(note(keys, "refused again"))
            await eventually(lambda: asyncio.sleep(0, client.relay_states()[1]["refused"]),
                             lambda n: n >= 3)
        assert event.id().to_hex() in good.received
        lines = [r.getMessage() for r in caplog.records if refusal in r.getMessage()]
        assert len(lines) == 1  # the same reason again is not worth another warning
        assert strict.url in lines[0] and "dropped" in lines[0]
        assert strict.received.count(event.id().to_hex()) == 1  # not retried


async def test_auth_required_is_answered_and_the_event_sent_again(keys: Keys) -> None:
    members = Relay("auth-required: sign in first")
    async with connected(keys, members) as client:
        event = note(keys, "for members")
        await eventually(lambda: client.publish(event),
                         lambda _: event.id().to_hex() in members.received)
        # Refused before AUTH, then sent again once the challenge was answered.
        await eventually(lambda: asyncio.sleep(0, members.accepted), bool)
        assert members.accepted == [event.id().to_hex()]
        [state] = client.relay_states()  # what /healthz shows the operator
        assert state["auth"] == "answered" and state["last_refusal"] == "auth-required"


async def test_a_newer_status_replaces_the_one_still_waiting(keys: Keys) -> None:
    """A relay resting (here: its lane not started) gets only the newest of a replaceable
    event that changed meanwhile; every caller hears what became of the newest."""
    sent: list[str] = []

    async def send(event: SignedEvent, url: str) -> tuple[bool, str]:
        sent.append(event.sdk().content())
        return True, ""

    lane = RelayLane("ws://relay.example", send)
    older = lane.put(sign(keys, 30333, "old", [["d", "cp"]]))
    other = lane.put(sign(keys, 30333, "other", [["d", "cp-2"]]))
    newer = lane.put(sign(keys, 30333, "new", [["d", "cp"]]))
    lane.start()
    try:
        assert await asyncio.wait_for(asyncio.gather(older, other, newer), 2) == [True] * 3
        assert sent == ["new", "other"]
    finally:
        await lane.close()


async def test_a_full_queue_drops_its_oldest(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_lanes, "MAX_QUEUED", 2)

    async def send(event: SignedEvent, url: str) -> tuple[bool, str]:
        return True, ""

    lane = RelayLane("ws://relay.example", send)
    first, *rest = [lane.put(SignedEvent.of(note(keys, f"n{n}"))) for n in range(3)]
    assert first.done() and first.result() is False
    assert lane.state.dropped == 1 and lane.state.queued == 2
    lane.start()
    try:
        assert await asyncio.wait_for(asyncio.gather(*rest), 2) == [True, True]
    finally:
        await lane.close()


async def test_a_public_relay_gets_events_within_its_budget_and_ours_at_once(
        keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_lanes, "BUDGET_RATE", 10.0)
    monkeypatch.setattr(relay_lanes, "BUDGET_BURST", 3)
    times: dict[str, list[float]] = {"public": [], "ours": []}

    async def send(event: SignedEvent, url: str) -> tuple[bool, str]:
        times[url].append(time.monotonic())
        return True, ""

    public, ours = RelayLane("public", send), RelayLane("ours", send, metered=False)
    started = time.monotonic()
    for lane in (public, ours):
        lane.start()
    try:
        done = [lane.put(SignedEvent.of(note(keys, f"n{n}"))) for n in range(7) for lane in (public, ours)]
        assert all(await asyncio.wait_for(asyncio.gather(*done), 5))
        assert times["ours"][-1] - started < 0.1  # strom's own relay: no budget
        # 3 at once, then 10 a second: the 7th goes out after about 0.4 s.
        assert times["public"][2] - started < 0.1
        assert times["public"][-1] - started >= 0.3
    finally:
        for lane in (public, ours):
            await lane.close()


async def test_an_acceptance_of_an_event_sent_before_the_rest_leaves_the_rest(
        keys: Keys) -> None:
    """Two events out together: the relay refuses the first (`rate-limited:`) and accepts the
    second after that. The relay asked for a rest; the late acceptance does not end it."""
    refused = asyncio.Event()

    async def send(event: SignedEvent, url: str) -> tuple[bool, str]:
        if event.sdk().content() == "first":
            refused.set()
            return False, "rate-limited: slow down"
        await refused.wait()
        await asyncio.sleep(0.01)
        return True, ""

    lane = RelayLane("ws://relay.example", send)
    first = lane.put(SignedEvent.of(note(keys, "first")))
    second = lane.put(SignedEvent.of(note(keys, "second")))
    lane.start()
    try:
        assert await asyncio.wait_for(second, 2) is True
        assert lane.state.resting_until is not None and not first.done()  # sent again later
    finally:
        await lane.close()
