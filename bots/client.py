"""One nostr-sdk Client for all charge point identities.

The Client has no signer (stack notes): events are signed per identity before sending, and
NIP-42 AUTH is answered here for every identity, so one connection may read the DMs of all
charge points. After authenticating, the subscriptions are sent again to that relay (a relay
closes a DM subscription it received before AUTH).

A relay's `OK false` (NIP-01 prefixes) is handled for that relay alone: `duplicate:` counts as
accepted, `rate-limited:` rests the relay (doubling from REST_FIRST to REST_MAX seconds; the
other relays keep getting events), `auth-required:` sends the event again to it once after the
NIP-42 challenge was answered (in the background: the caller does not wait), and any other
refusal (`invalid:`, `blocked:`, `pow:`, `restricted:`, …) drops the event there with a log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from nostr_sdk import (
    Client,
    ClientMessage,
    ClientNotificationStream,
    Event,
    EventBuilder,
    Filter,
    Keys,
    Kind,
    RelayUrl,
    ReqTarget,
    SendEventTarget,
    Tag,
    uniffi_set_event_loop,
)

log = logging.getLogger(__name__)

AUTH_KIND = 22242
RESUBSCRIBE_DELAY = 0.2
FETCH_SECONDS = 3.0
REST_FIRST, REST_MAX = 5.0, 600.0
AUTH_RETRY_DELAY = 0.5
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
        self._resting: dict[str, tuple[float, float]] = {}  # relay -> (until, last rest)

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
        """Send to every relay not resting; True when at least one accepted it."""
        now = time.monotonic()
        awake = [url for url in self._relays
                 if self._resting.get(str(RelayUrl.parse(url)), (0.0, 0.0))[0] <= now]
        return await self._send(event, awake, retry_auth=True)

    async def _send(self, event: Event, relays: list[str], *, retry_auth: bool) -> bool:
        if self._client is None or not relays:
            return False
        kind = event.kind().as_u16()
        try:
            output = await self._client.send_event(
                event, target=SendEventTarget.to([RelayUrl.parse(url) for url in relays]))
        except Exception as exc:  # no relay reachable right now: the caller may retry later
            log.warning("nostr: publishing kind %d failed: %s", kind, exc)
            return False
        accepted = bool(output.success)
        for url in output.success:
            self._resting.pop(str(url), None)
        signing_in: list[str] = []
        for relay_url, message in output.failed.items():
            url, prefix = str(relay_url), message.split(":", 1)[0].strip()
            if prefix == "duplicate":
                accepted = True
            elif prefix == "rate-limited":
                rest = min(REST_MAX, self._resting.get(url, (0.0, REST_FIRST / 2))[1] * 2)
                self._resting[url] = (time.monotonic() + rest, rest)
                log.info("nostr: %s rate-limits us (%s): resting it %.0f s", url, message, rest)
            elif prefix == "auth-required" and retry_auth:
                signing_in.append(url)
            else:
                log.warning("nostr: kind %d %s dropped by %s: %s", kind, event.id().to_hex(),
                            url, message)
        if signing_in:
            self._spawn(self._send_after_auth(event, signing_in))
        return accepted

    async def _send_after_auth(self, event: Event, relays: list[str]) -> None:
        """Once more, when the relay's challenge has had time to be answered (`_listen`)."""
        await asyncio.sleep(AUTH_RETRY_DELAY)
        await self._send(event, relays, retry_auth=False)

    async def fetch(self, filters: list[Filter], seconds: float = FETCH_SECONDS) -> list[Event]:
        """Stored events matching `filters` from all relays (what a client does to look up),
        as many as arrived within `seconds`."""
        if self._client is None:
            return []
        try:
            return list(await self._client.fetch_events(ReqTarget.auto(filters),
                                                         timeout=timedelta(seconds=seconds)))
        except Exception as exc:
            log.info("nostr: fetch failed: %s", exc)
            return []

    async def subscribe(self, sub_id: str, filters: list[Filter]) -> None:
        """Subscribe (or replace the subscription `sub_id`) on every relay."""
        self._subscriptions[sub_id] = filters
        if self._client is not None:
            await self._client.subscribe(ReqTarget.auto(filters), id=sub_id)

    async def _listen(self, notifications: ClientNotificationStream) -> None:
        while True:
            note = await notifications.next()
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
