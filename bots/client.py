"""One nostr-sdk Client for all charge point identities.

The Client has no signer (stack notes): events are signed per identity before sending, and
NIP-42 AUTH is answered here for every identity, so one connection may read the DMs of all
charge points. After authenticating, the subscriptions are sent again to that relay (a relay
closes a DM subscription it received before AUTH).

Publishing goes through one `RelayLane` per relay (`bots/relay_lanes.py`): its own queue,
budget, rests and `OK` timeout, so one relay's refusals or silence never slow the others. A
publish waits until one relay has accepted the event (at most `PUBLISH_WAIT` seconds); the
other lanes go on in the background. Reconnects are nostr-sdk's, from a retry interval with
jitter per relay (many processes restarted together do not knock at once). Strom's own
relays (`unmetered`, the embedded relay) get the events over a websocket of their own
(`bots/own_relay.py`): nostr-sdk's client costs ~0.7 ms of CPU per event sent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection
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
    RelayOptions,
    RelayUrl,
    ReqTarget,
    SendEventTarget,
    Tag,
    uniffi_set_event_loop,
)

from bots.own_relay import OwnRelay
from bots.relay_lanes import OK_SECONDS, RelayLane
from bots.signed import SignedEvent
from strom.tasks import Tasks

log = logging.getLogger(__name__)

AUTH_KIND = 22242
RESUBSCRIBE_DELAY = 0.2
FETCH_SECONDS = 3.0
PUBLISH_WAIT = OK_SECONDS + 1.0
RECONNECT_FIRST = 5.0  # nostr-sdk's minimum; it lengthens the interval while a relay is down
RECONNECT_JITTER = 5.0
EventHandler = Callable[[Event], Awaitable[None]]


class NostrClient:
    """Publish signed events to every relay and deliver subscribed events to one handler."""

    def __init__(self, relays: list[str], identities: Callable[[], list[Keys]],
                 on_event: EventHandler, *, unmetered: Collection[str] = ()) -> None:
        """`unmetered`: strom's own relays (the embedded relay): no publish budget, and the
        events go over a connection of their own."""
        self._relays = list(dict.fromkeys(relays))
        self._identities = identities
        self._on_event = on_event
        self._client: Client | None = None
        self._subscriptions: dict[str, list[Filter]] = {}
        self._task: asyncio.Task[None] | None = None
        self._handlers = Tasks()
        self._own = {url: OwnRelay(url) for url in self._relays if url in unmetered}
        self._lanes = {url: RelayLane(url, self._send_to, metered=url not in unmetered)
                       for url in self._relays}
        # Each URL parsed once, at the start: not again for every event sent to it.
        self._relay_urls: dict[str, RelayUrl] = {}
        self._lane_by_relay: dict[str, RelayLane] = {}

    async def start(self) -> None:
        # Every binding coroutine and callback runs on this loop (stack notes).
        uniffi_set_event_loop(asyncio.get_running_loop())
        client = Client()
        for url in self._relays:
            relay_url = self._relay_urls[url] = RelayUrl.parse(url)
            self._lane_by_relay[str(relay_url)] = self._lanes[url]
            retry = RECONNECT_FIRST + random.uniform(0, RECONNECT_JITTER)
            await client.add_relay(relay_url, opts=RelayOptions()
                                   .retry_interval(timedelta(seconds=retry))
                                   .adjust_retry_interval(True))
        notifications = client.notifications()
        await client.connect()
        self._client = client
        self._task = asyncio.create_task(self._listen(notifications), name="nostr:notifications")
        for lane in self._lanes.values():
            lane.start()
        log.info("nostr: connecting to %s", ", ".join(self._relays))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._handlers.close()
        for lane in self._lanes.values():
            await lane.close()
        for own in self._own.values():
            await own.close()
        if self._client is not None:
            await self._client.shutdown()
            self._client = None

    async def publish(self, event: Event | SignedEvent) -> bool:
        """Queue `event` for every relay; True once one accepted it (at most `PUBLISH_WAIT`
        seconds: the relays that have not answered by then still get it in the background)."""
        if self._client is None or not self._lanes:
            return False
        signed = event if isinstance(event, SignedEvent) else SignedEvent.of(event)
        # One future resolved by the lanes' callbacks, not asyncio.wait: that cost ~40 µs of
        # CPU per event published (its sets, callbacks and timer, measured).
        first: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        left = len(self._lanes)

        def answered(lane_done: asyncio.Future[bool]) -> None:
            nonlocal left
            left -= 1
            if not first.done() and (lane_done.result() or not left):
                first.set_result(lane_done.result())

        for lane in self._lanes.values():
            lane.put(signed).add_done_callback(answered)
        try:
            async with asyncio.timeout(PUBLISH_WAIT):
                return await first
        except TimeoutError:
            return False

    def relay_states(self) -> list[dict[str, object]]:
        """Per relay: counts, the last refusal, a rest, NIP-42 state (for the operator)."""
        return [lane.state.as_json() for lane in self._lanes.values()]

    async def _send_to(self, event: SignedEvent, url: str) -> tuple[bool, str]:
        """One event to one relay: (accepted, the relay's message or "timeout")."""
        if (own := self._own.get(url)) is not None:
            return await own.send(event)
        if self._client is None:
            return False, "closed: not connected"
        output = await self._client.send_event(
            event.sdk(), target=SendEventTarget.to([self._relay_urls[url]]),
            ok_timeout=timedelta(seconds=OK_SECONDS))
        if output.success:
            return True, ""
        return False, next(iter(output.failed.values()), "timeout")

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
                self._handlers.spawn(self._deliver(note.event), "nostr:handle")
            elif note.is_message():
                message = note.message.as_enum()
                if message.is_auth():
                    await self._authenticate(note.relay_url, message.challenge)
                elif message.is_closed() and message.message.startswith("auth-required") \
                        and message.subscription_id in self._subscriptions:
                    # The REQ overtook our AUTH: ask again once the relay has processed it.
                    self._handlers.spawn(
                        self._resubscribe(note.relay_url, message.subscription_id),
                        "nostr:resubscribe")
            elif note.is_shutdown():
                return

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
        if (lane := self._lane_by_relay.get(str(relay_url))) is not None:
            lane.authenticated()
        for sub_id, filters in self._subscriptions.items():
            await self._client.subscribe(ReqTarget.single(relay_url, filters), id=sub_id)
