"""One client connection: its subscriptions, authentication, rate limit and messages.

Protected kinds (4 and 1059, see `relay.event.PROTECTED_KINDS`) follow NIP-42 this way:
a REQ or COUNT that names one of these kinds before the client has authenticated is answered
`CLOSED "auth-required: …"`; a filter without `kinds` gets them silently left out; an
authenticated client gets only those it wrote or that are `p`-tagged to it. A connection may
authenticate several pubkeys (one bot connection reading for many charge points).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from relay.auth import new_challenge, verify_auth
from relay.event import (
    AUTH_KIND,
    PROTECTED_KINDS,
    Event,
    InvalidEvent,
    parse_event,
    verify_signature,
)
from relay.filters import Filter, InvalidFilter, parse_filter
from relay.limits import Limits
from relay.send_queue import SendQueue
from relay.store import EventStore, QueryTooSlow, SaveResult
from strom.forwarded import Network, client_address
from strom.ratelimit import TokenBucket

log = logging.getLogger(__name__)


class Hub(Protocol):
    """What a connection needs from the relay it belongs to."""

    limits: Limits
    store: EventStore
    auth_urls: frozenset[str]
    proxies: tuple[Network, ...]  # reverse proxies whose X-Forwarded-For is believed

    def is_trusted(self, pubkey: str) -> bool: ...
    def take_query(self, address: str) -> bool: ...
    def charge_query(self, address: str, cost: float) -> None: ...
    def write_rejection(self, event: Event) -> str | None: ...
    def broadcast(self, event: Event) -> None: ...


@dataclass(slots=True)
class Subscription:
    filters: list[Filter]
    # Live events that arrive while stored ones are still being sent; None once past EOSE.
    pending: list[Event] | None = field(default_factory=list)


def _dumps(message: list[Any]) -> str:
    # ASCII only: a client's subscription id may hold a lone surrogate (valid JSON escape,
    # no UTF-8 form), and an unsendable frame would stop the connection's sender.
    return json.dumps(message, separators=(",", ":"))


def _given_id(obj: dict[str, Any]) -> str:
    """The id an invalid event claims, to name it in OK (only if it looks like one)."""
    given = obj.get("id")
    return given if isinstance(given, str) and len(given) <= 64 else ""


class Connection:
    """Serves one websocket until it closes: `await Connection(ws, hub).serve()`."""

    def __init__(self, ws: ServerConnection, hub: Hub) -> None:
        self.ws = ws
        self.hub = hub
        self.limits = hub.limits
        self.subs: dict[str, Subscription] = {}
        self.readers: frozenset[str] = frozenset()
        self.challenge = new_challenge()
        self._bucket = TokenBucket(self.limits.events_per_second, self.limits.event_burst)
        self._queries = TokenBucket(self.limits.reqs_per_second, self.limits.req_burst)
        self.address = client_address(
            ws.remote_address[0] if ws.remote_address else "?",
            ws.request.headers.get("X-Forwarded-For") if ws.request else None, hub.proxies)
        self._outbox = SendQueue(ws, self.limits.max_pending_messages)
        self._in_flight = asyncio.Semaphore(self.limits.max_unconfirmed_events)
        self._closing: asyncio.Task[None] | None = None
        self._handlers: dict[str, Callable[[list[Any]], Awaitable[None]]] = {
            "EVENT": self._on_event, "REQ": self._on_req, "CLOSE": self._on_close,
            "COUNT": self._on_count, "AUTH": self._on_auth,
        }

    async def serve(self) -> None:
        """Send the AUTH challenge, then handle messages one by one until the socket closes."""
        sender = asyncio.create_task(self._outbox.run(), name="relay-send")
        self.send(["AUTH", self.challenge])
        try:
            async for message in self.ws:
                # A client that does not read its answers is not read from either.
                await self._outbox.wait_room()
                await self._handle(message)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    def send(self, message: list[Any]) -> None:
        """Queue an answer to the client."""
        self._outbox.push(_dumps(message))

    def _push_live(self, text: str) -> None:
        if not self._outbox.push_live(text) and not self._outbox.closed:
            self._outbox.closed = True
            log.info("relay: closing a connection that does not keep up with its events")
            # Keep a reference: the loop holds tasks only weakly.
            self._closing = asyncio.get_running_loop().create_task(self.ws.close(1013, "too slow"))

    def notice(self, text: str) -> None:
        self.send(["NOTICE", text])

    def offer(self, event: Event) -> None:
        """A new event: send it to every subscription it matches."""
        if not event.visible_to(self.readers):
            return
        for sub_id, sub in self.subs.items():
            if any(f.matches(event) for f in sub.filters):
                if sub.pending is not None:
                    sub.pending.append(event)
                else:
                    self._push_live(f'["EVENT",{json.dumps(sub_id)},{event.raw}]')

    async def _handle(self, message: str | bytes) -> None:
        try:
            text = message.decode() if isinstance(message, bytes) else message
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            self.notice("invalid: message is not valid JSON")
            return
        if not isinstance(parsed, list) or not parsed or not isinstance(parsed[0], str):
            self.notice("invalid: a message is a JSON array that starts with its type")
            return
        handler = self._handlers.get(parsed[0])
        if handler is None:
            self.notice(f"invalid: unknown message type {parsed[0][:16]!r}")
            return
        try:
            await handler(parsed)
        except Exception:
            log.exception("relay: failed to handle a %s message", parsed[0])
            self.notice("error: internal error")

    def _ok(self, event_id: str, accepted: bool, message: str) -> None:
        self.send(["OK", event_id, accepted, message])

    async def _on_event(self, msg: list[Any]) -> None:
        if len(msg) != 2 or not isinstance(msg[1], dict):
            self.notice("invalid: EVENT takes one event object")
            return
        try:
            event = parse_event(msg[1])
        except InvalidEvent as exc:
            self._ok(_given_id(msg[1]), False, f"invalid: {exc}")
            return
        # Trusted authors (strom's own identities) are not rate limited; a forged claim to be
        # one costs only the signature check that follows.
        if not self.hub.is_trusted(event.pubkey) and not self._bucket.take():
            self._ok(event.id, False, "rate-limited: slow down, at most "
                     f"{self.limits.events_per_second:g} events per second")
            return
        if not verify_signature(event):
            self._ok(event.id, False, "invalid: bad signature")
            return
        reason = self._refusal(event)
        if reason is not None:
            self._ok(event.id, False, reason)
            return
        if event.is_ephemeral:
            self.hub.broadcast(event)
            self._ok(event.id, True, "")
            return
        # Bound what one connection has waiting for a commit; reading pauses meanwhile.
        await self._in_flight.acquire()
        self.hub.store.save(event).add_done_callback(lambda f: self._saved(event, f))

    def _refusal(self, event: Event) -> str | None:
        now = int(time.time())
        if event.kind == AUTH_KIND:
            return f"invalid: kind {AUTH_KIND} events belong in AUTH messages"
        if event.created_at > now + self.limits.created_at_upper_limit:
            return "invalid: created_at is too far in the future"
        expiration = event.expiration
        if expiration is not None and expiration <= now:
            return "invalid: event has expired"
        return self.hub.write_rejection(event)

    def _saved(self, event: Event, future: asyncio.Future[SaveResult]) -> None:
        self._in_flight.release()
        if future.cancelled():
            return
        result = future.result()
        if result.stored:
            self.hub.broadcast(event)
        self._ok(event.id, result.accepted, result.message)

    def _parse_filters(self, msg: list[Any]) -> tuple[str, list[Filter]] | None:
        """The subscription id and filters of a REQ or COUNT, or None after answering."""
        kind = msg[0]
        limit = self.limits.max_subid_length
        if len(msg) < 2 or not isinstance(msg[1], str) or not 1 <= len(msg[1]) <= limit:
            self.notice(f"invalid: {kind} needs a subscription id of 1 to {limit} characters")
            return None
        sub_id = msg[1]
        refusal = self._query_refusal(kind)
        if refusal is not None:
            self.send(["CLOSED", sub_id, refusal])
            return None
        if len(msg) < 3:
            self.send(["CLOSED", sub_id, f"invalid: {kind} needs at least one filter"])
            return None
        if len(msg) - 2 > self.limits.max_filters:
            self.send(["CLOSED", sub_id, f"invalid: at most {self.limits.max_filters} filters"])
            return None
        try:
            filters = [parse_filter(f, default_limit=self.limits.default_limit,
                                    max_limit=self.limits.max_limit,
                                    max_items=self.limits.max_filter_items,
                                    max_tag_values=self.limits.max_tag_values)
                       for f in msg[2:]]
        except InvalidFilter as exc:
            self.send(["CLOSED", sub_id, f"invalid: {exc}"])
            return None
        if not self.readers and any(f.kinds and not f.kinds.isdisjoint(PROTECTED_KINDS)
                                    for f in filters):
            self.send(["CLOSED", sub_id, "auth-required: kinds 4 and 1059 are only for their "
                       "author or recipient; authenticate with AUTH (NIP-42)"])
            return None
        return sub_id, filters

    @property
    def trusted(self) -> bool:
        """Authenticated (NIP-42) as one of strom's own identities."""
        return any(self.hub.is_trusted(pubkey) for pubkey in self.readers)

    def _query_refusal(self, kind: str) -> str | None:
        """Why a REQ or COUNT is refused now (rate limits), or None."""
        if self.trusted:
            return None
        if not self._queries.take():
            return (f"rate-limited: at most {self.limits.reqs_per_second:g} REQ and COUNT per "
                    "second on one connection; slow down")
        if not self.hub.take_query(self.address):
            return "rate-limited: too many REQ and COUNT from your address; slow down"
        return None

    def _charge(self, events: int) -> None:
        """A REQ's stored events cost rate tokens too: many heavy REQs are refused sooner."""
        if self.trusted or events < self.limits.req_cost_events:
            return
        cost = events / self.limits.req_cost_events
        self._queries.charge(cost)
        self.hub.charge_query(self.address, cost)

    @property
    def _query_seconds(self) -> float | None:
        return None if self.trusted else self.limits.max_query_ms / 1000

    def _too_slow(self, sub_id: str) -> None:
        self.send(["CLOSED", sub_id, f"error: the query took longer than "
                   f"{self.limits.max_query_ms} ms; ask for fewer events or narrower filters"])

    async def _on_req(self, msg: list[Any]) -> None:
        parsed = self._parse_filters(msg)
        if parsed is None:
            return
        sub_id, filters = parsed
        if sub_id not in self.subs and len(self.subs) >= self.limits.max_subscriptions:
            self.send(["CLOSED", sub_id, "rate-limited: too many subscriptions, at most "
                       f"{self.limits.max_subscriptions}; close one first"])
            return
        sub = Subscription(filters)
        self.subs[sub_id] = sub
        try:
            stored = await self.hub.store.query(filters, self.readers,
                                                max_events=self.limits.max_events_per_req,
                                                max_seconds=self._query_seconds)
        except QueryTooSlow:
            del self.subs[sub_id]
            self._too_slow(sub_id)
            return
        except Exception:
            log.exception("relay: query failed")
            del self.subs[sub_id]
            self.send(["CLOSED", sub_id, "error: could not read stored events"])
            return
        self._charge(len(stored))
        prefix = f'["EVENT",{json.dumps(sub_id)},'
        for _, raw in stored:
            await self._outbox.wait_room()
            self._outbox.push(prefix + raw + "]")
        self.send(["EOSE", sub_id])
        sent = {event_id for event_id, _ in stored}
        # Events committed while the query ran may be both in `stored` and in `pending`.
        while sub.pending:
            event = sub.pending.pop(0)
            if event.id not in sent and event.visible_to(self.readers):
                await self._outbox.wait_room()
                self._outbox.push(prefix + event.raw + "]")
        sub.pending = None

    async def _on_close(self, msg: list[Any]) -> None:
        if len(msg) != 2 or not isinstance(msg[1], str):
            self.notice("invalid: CLOSE takes a subscription id")
            return
        self.subs.pop(msg[1], None)

    async def _on_count(self, msg: list[Any]) -> None:
        parsed = self._parse_filters(msg)
        if parsed is None:
            return
        sub_id, filters = parsed
        try:
            count = await self.hub.store.count(filters, self.readers,
                                               max_seconds=self._query_seconds)
        except QueryTooSlow:
            self._too_slow(sub_id)
            return
        self.send(["COUNT", sub_id, {"count": count}])

    async def _on_auth(self, msg: list[Any]) -> None:
        if len(msg) != 2 or not isinstance(msg[1], dict):
            self.notice("invalid: AUTH takes one event object")
            return
        try:
            event = verify_auth(msg[1], challenge=self.challenge, relay_urls=self.hub.auth_urls,
                                now=int(time.time()))
        except InvalidEvent as exc:
            self._ok(_given_id(msg[1]), False, f"invalid: {exc}")
            return
        self.readers = self.readers | {event.pubkey}
        self._ok(event.id, True, "")
