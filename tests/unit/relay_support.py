"""Helpers for the relay tests: events signed by nostr-sdk and a raw websocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import websockets
from nostr_sdk import EventBuilder, Keys, Kind, Tag, Timestamp
from websockets.asyncio.client import ClientConnection

TIMEOUT = 5.0


def sign(keys: Keys, kind: int, content: str = "", tags: Sequence[Sequence[str]] = (),
         created_at: int | None = None) -> dict[str, Any]:
    """An event signed by nostr-sdk (an implementation independent of the relay's)."""
    builder = EventBuilder(Kind(kind), content).tags([Tag.parse(list(t)) for t in tags])
    if created_at is not None:
        builder = builder.custom_created_at(Timestamp.from_secs(created_at))
    return json.loads(builder.finalize(keys).as_json())


def hexkey(keys: Keys) -> str:
    return keys.public_key().to_hex()


class RawClient:
    """A nostr client speaking plain JSON over websockets; keeps unclaimed messages."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: list[list[Any]] = []
        self.challenge = ""

    @classmethod
    async def connect(cls, url: str) -> RawClient:
        client = cls(await websockets.connect(url, max_size=None))
        auth = await client.expect(lambda m: m[0] == "AUTH")
        client.challenge = auth[1]
        return client

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, *message: Any) -> None:
        await self.ws.send(json.dumps(list(message)))

    async def expect(self, match: Callable[[list[Any]], bool],
                     within: float = TIMEOUT) -> list[Any]:
        """The first message (kept or new) that `match`es."""
        for i, message in enumerate(self.inbox):
            if match(message):
                return self.inbox.pop(i)
        async with asyncio.timeout(within):
            while True:
                message = json.loads(await self.ws.recv())
                if match(message):
                    return message
                self.inbox.append(message)

    async def nothing(self, match: Callable[[list[Any]], bool], wait: float = 0.3) -> None:
        """Assert that no matching message arrives within `wait` seconds."""
        try:
            found = await self.expect(match, within=wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message {found}")

    async def publish(self, event: dict[str, Any]) -> list[Any]:
        """Send EVENT and return its OK."""
        await self.send("EVENT", event)
        return await self.expect(lambda m: m[0] == "OK" and m[1] == event["id"])

    async def req(self, sub_id: str, *filters: dict[str, Any]) -> list[dict[str, Any]]:
        """REQ and collect stored events until EOSE; raises on CLOSED."""
        await self.send("REQ", sub_id, *filters)
        events = []
        while True:
            message = await self.expect(lambda m: m[0] in ("EVENT", "EOSE", "CLOSED")
                                        and m[1] == sub_id)
            if message[0] == "EOSE":
                return events
            if message[0] == "CLOSED":
                raise ClosedError(message[2])
            events.append(message[2])

    async def closed(self, sub_id: str, *filters: dict[str, Any]) -> str:
        """Send REQ expecting CLOSED; returns its reason."""
        try:
            await self.req(sub_id, *filters)
        except ClosedError as exc:
            return str(exc)
        raise AssertionError("expected CLOSED")

    async def live(self, sub_id: str) -> dict[str, Any]:
        """The next live EVENT for `sub_id`."""
        return (await self.expect(lambda m: m[0] == "EVENT" and m[1] == sub_id))[2]

    async def count(self, sub_id: str, *filters: dict[str, Any]) -> int:
        await self.send("COUNT", sub_id, *filters)
        message = await self.expect(lambda m: m[0] in ("COUNT", "CLOSED") and m[1] == sub_id)
        if message[0] == "CLOSED":
            raise ClosedError(message[2])
        return message[2]["count"]

    async def auth(self, keys: Keys, relay_url: str, challenge: str | None = None) -> list[Any]:
        """Answer the challenge with a kind-22242 event; returns the OK."""
        event = sign(keys, 22242, tags=[["relay", relay_url],
                                        ["challenge", challenge or self.challenge]])
        await self.send("AUTH", event)
        return await self.expect(lambda m: m[0] == "OK" and m[1] == event["id"])


class ClosedError(Exception):
    """The relay answered CLOSED."""


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in events]


def newest_first(*events: dict[str, Any]) -> list[str]:
    """Ids in the order a relay serves them: newest first, ties by lowest id."""
    return [e["id"] for e in sorted(events, key=lambda e: (-e["created_at"], e["id"]))]
