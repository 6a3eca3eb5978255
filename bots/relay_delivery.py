"""Deliver one event to relays strom does not own, once: zap receipts to the relays a zap
request names (NIP-57 `relays` tag), DMs to the relays their recipient reads (NIP-17 kind
10050, NIP-65 read relays, `bots.inbox`). Those relays get that event and nothing more. And
look one thing up there (`fetch`): a payer's profile on their NIP-65 write relays.

Those URLs come from outsiders (a zap request, a relay list). Each gets one short-lived
connection per event: fenced like every outbound target (`strom.outbound`: no private or loopback hosts
unless allowed, strom itself never; connected to the address that was checked), a deadline,
at most `MAX_AT_ONCE` connections at a time and `MAX_WAITING` deliveries queued, closed after
the relay's `OK`. They never join strom's shared client, so they see no other event of strom's
and no later payer's lookup.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

import websockets
from nostr_sdk import Event

from strom.outbound import Outbound, OutboundError

log = logging.getLogger(__name__)

MAX_RELAYS = 5  # per event
MAX_AT_ONCE = 8
MAX_WAITING = 200
DEADLINE = 5.0  # per relay: connect, send, wait for OK
MAX_MESSAGE = 64 * 1024  # what we read back is an OK, a NOTICE or one small event
MAX_EVENTS = 10  # per lookup and relay
SUB_ID = "strom"
_FAILURES = (OutboundError, OSError, TimeoutError, ValueError, websockets.WebSocketException)


class RelayDelivery:
    """`send_soon(event, relays)` returns at once; `close()` ends what is under way."""

    def __init__(self, outbound: Outbound, shared: Collection[str]) -> None:
        self._outbound = outbound
        self._shared = {url.rstrip("/") for url in shared}  # they get it through the client
        self._slots = asyncio.Semaphore(MAX_AT_ONCE)
        self._tasks: set[asyncio.Task[bool]] = set()

    def send_soon(self, event: Event, relays: list[str]) -> None:
        """Deliver `event` to the first `MAX_RELAYS` ws(s) relays not already in use."""
        fresh = self._fresh(relays)
        message = json.dumps(["EVENT", json.loads(event.as_json())])
        for url in fresh:
            if len(self._tasks) >= MAX_WAITING:
                log.info("nostr: too many relay deliveries waiting, %s skipped", url[:80])
                continue
            task = asyncio.create_task(self._deliver(url, message, event),
                                       name="nostr:relay-delivery")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def fetch(self, relays: list[str], query: dict[str, object],
                    seconds: float) -> list[Event]:
        """Stored events matching the NIP-01 filter `query` from the first `MAX_RELAYS` of
        `relays` (at most `MAX_EVENTS` each, within `seconds`), unverified: the caller checks
        whose they are."""
        found = await asyncio.gather(*(self._query(url, query, seconds)
                                       for url in self._fresh(relays)))
        return [event for events in found for event in events]

    def _fresh(self, relays: list[str]) -> list[str]:
        return [r for r in dict.fromkeys(relays) if r.startswith(("ws://", "wss://"))
                and r.rstrip("/") not in self._shared][:MAX_RELAYS]

    async def close(self) -> None:
        """Cancel the deliveries under way (their connections close with them)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @asynccontextmanager
    async def _connect(self, url: str) -> AsyncIterator[websockets.ClientConnection]:
        """One fenced connection: to the address that was checked, closed on leaving."""
        target = await self._outbound.check(url)
        tls: dict[str, Any] = {"server_hostname": target.host} if target.scheme == "wss" else {}
        async with websockets.connect(url, proxy=None, host=target.ip, port=target.port,
                                      open_timeout=None, max_size=MAX_MESSAGE, **tls) as ws:
            yield ws

    async def _deliver(self, url: str, message: str, event: Event) -> bool:
        event_id = event.id().to_hex()
        try:
            async with self._slots, asyncio.timeout(DEADLINE), self._connect(url) as ws:
                await ws.send(message)
                while True:
                    answer = json.loads(await ws.recv())
                    if isinstance(answer, list) and answer[:2] == ["OK", event_id]:
                        return bool(answer[2]) if len(answer) > 2 else False
        except _FAILURES as exc:
            log.info("nostr: kind %d not delivered to %s (%s)", event.kind().as_u16(),
                     url[:80], str(exc) or type(exc).__name__)
            return False

    async def _query(self, url: str, query: dict[str, object], seconds: float) -> list[Event]:
        found: list[Event] = []
        try:
            async with self._slots, asyncio.timeout(seconds), self._connect(url) as ws:
                await ws.send(json.dumps(["REQ", SUB_ID, query]))
                while len(found) < MAX_EVENTS:
                    answer = json.loads(await ws.recv())
                    if not isinstance(answer, list) or answer[1:2] != [SUB_ID]:
                        continue
                    if answer[0] != "EVENT" or len(answer) < 3:
                        break  # EOSE or CLOSED: all there is
                    try:
                        found.append(Event.from_json(json.dumps(answer[2])))
                    except Exception:  # not an event: that relay's problem, skipped
                        continue
        except _FAILURES as exc:
            log.info("nostr: lookup on %s ended (%s)", url[:80], str(exc) or type(exc).__name__)
        return found
