"""One nostr-sdk Client for all charge point identities.

The Client has no signer (stack notes): events are signed per identity before sending, and
NIP-42 AUTH is answered here for every identity, so one connection may read the DMs of all
charge points. After authenticating, the subscriptions are sent again to that relay (a relay
closes a DM subscription it received before AUTH).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from nostr_sdk import (
    Client,
    ClientMessage,
    Event,
    EventBuilder,
    Filter,
    Keys,
    Kind,
    RelayUrl,
    ReqTarget,
    Tag,
    uniffi_set_event_loop,
)

log = logging.getLogger(__name__)

AUTH_KIND = 22242
RESUBSCRIBE_DELAY = 0.2
FETCH_SECONDS = 3.0
EventHandler = Callable[[Event], Awaitable[None]]


class NostrClient:
    """Publish signed events to every relay and deliver subscribed events to one handler."""

    def __init__(self, relays: list[str], identities: Callable[[], list[Keys]],
                 on_event: EventHandler) -> None:
        self._relays = list(dict.fromkeys(relays))
        self._identities = identities
        self._on_event = on_event
        self._client: Client | None = None
        self._subscriptions: dict[str, list[Filter]] = {}
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # Every binding coroutine and callback runs on this loop (stack notes).
        uniffi_set_event_loop(asyncio.get_running_loop())
        client = Client()
        for url in self._relays:
            await client.add_relay(RelayUrl.parse(url))
        notifications = client.notifications()
        await client.connect()
        self._client = client
        self._task = asyncio.create_task(self._listen(notifications), name="nostr:notifications")
        log.info("nostr: connecting to %s", ", ".join(self._relays))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._client is not None:
            await self._client.shutdown()
            self._client = None

    async def publish(self, event: Event) -> bool:
        """Send to all relays; True when at least one accepted it."""
        if self._client is None:
            return False
        try:
            output = await self._client.send_event(event)
        except Exception as exc:  # no relay reachable right now: the caller may retry later
            log.warning("nostr: publishing kind %d failed: %s", event.kind().as_u16(), exc)
            return False
        if output.failed:
            log.info("nostr: kind %d refused by %s", event.kind().as_u16(), output.failed)
        return bool(output.success)

    async def fetch(self, filters: list[Filter]) -> list[Event]:
        """Stored events matching `filters` from all relays (what a client does to look up)."""
        if self._client is None:
            return []
        try:
            return list(await self._client.fetch_events(ReqTarget.auto(filters),
                                                         timeout=timedelta(seconds=FETCH_SECONDS)))
        except Exception as exc:
            log.info("nostr: fetch failed: %s", exc)
            return []

    async def subscribe(self, sub_id: str, filters: list[Filter]) -> None:
        """Subscribe (or replace the subscription `sub_id`) on every relay."""
        self._subscriptions[sub_id] = filters
        if self._client is not None:
            await self._client.subscribe(ReqTarget.auto(filters), id=sub_id)

    async def _listen(self, notifications: object) -> None:
        while True:
            note = await notifications.next()  # type: ignore[attr-defined]
            if note is None:
                continue
            if note.is_new_event():
                self._spawn(self._deliver(note.event))
            elif note.is_message():
                message = note.message.as_enum()
                if message.is_auth():
                    await self._authenticate(note.relay_url, message.challenge)
                elif message.is_closed() and message.message.startswith("auth-required") \
                        and message.subscription_id in self._subscriptions:
                    # The REQ overtook our AUTH: ask again once the relay has processed it.
                    self._spawn(self._resubscribe(note.relay_url, message.subscription_id))
            elif note.is_shutdown():
                return

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _resubscribe(self, relay_url: RelayUrl, sub_id: str) -> None:
        await asyncio.sleep(RESUBSCRIBE_DELAY)
        if self._client is not None and sub_id in self._subscriptions:
            await self._client.subscribe(ReqTarget.single(relay_url, self._subscriptions[sub_id]),
                                         id=sub_id)

    async def _deliver(self, event: Event) -> None:
        try:
            await self._on_event(event)
        except Exception:
            log.exception("nostr: handling kind %d event failed", event.kind().as_u16())

    async def _authenticate(self, relay_url: RelayUrl, challenge: str) -> None:
        """NIP-42 for each identity on this relay, then renew the subscriptions there."""
        assert self._client is not None
        relay = await self._client.relay(relay_url)
        for keys in self._identities():
            auth = (EventBuilder(Kind(AUTH_KIND), "")
                    .tags([Tag.parse(["relay", relay_url.__str__()]),
                           Tag.parse(["challenge", challenge])])
                    .finalize(keys))
            await relay.send_msg(ClientMessage.auth(auth))
        for sub_id, filters in self._subscriptions.items():
            await self._client.subscribe(ReqTarget.single(relay_url, filters), id=sub_id)
