"""Where a nostr user reads their direct messages (NIP-17 / NIP-65 outbox model).

A payer's phone client reads DMs from its kind 10050 relays (NIP-17), else from the read
relays of its kind 10002 list (NIP-65), and may read strom's relays not at all. Their lists are
looked up through strom's shared client on strom's relays, each lookup bounded in time; when
they have none, the relays of their newest zap request (which strom stored) stand in. The
answer, empty too, is cached for `TTL` seconds and for at most `SIZE` users, so a DM costs one
lookup per payer per TTL and memory stays bounded. Everything here comes from the user and may
lie: only their own signed lists count, and at most `MAX_RELAYS` URLs of them.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from nostr_sdk import Event, Filter, Kind, PublicKey

from bots.events import DM_RELAYS, RELAY_LIST
from strom.store.zaps import ZapRepository

log = logging.getLogger(__name__)

TTL = 600.0
SIZE = 2000
LOOKUP_SECONDS = 2.0
MAX_RELAYS = 5
MAX_URL = 256

Fetch = Callable[[list[Filter], float], Awaitable[list[Event]]]


class InboxCache:
    """pubkey -> relays, each entry forgotten after `ttl` seconds; the oldest makes room."""

    def __init__(self, ttl: float = TTL, size: int = SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._size, self._clock = ttl, size, clock
        self._entries: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, pubkey: str) -> list[str] | None:
        """The cached relays (maybe none), or None when unknown or stale."""
        entry = self._entries.get(pubkey)
        if entry is None or entry[0] <= self._clock():
            self._entries.pop(pubkey, None)
            return None
        return entry[1]

    def put(self, pubkey: str, relays: list[str]) -> None:
        self._entries.pop(pubkey, None)
        self._entries[pubkey] = (self._clock() + self._ttl, relays)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


def dm_relays_of(lists: list[Event]) -> list[str]:
    """From a user's kind 10050 and 10002 events: the newest 10050's relays, else the newest
    10002's read relays (an `r` tag without a marker, or marked `read`)."""
    newest: dict[int, Event] = {}
    for event in lists:
        kind = event.kind().as_u16()
        if kind not in newest or event.created_at().as_secs() > newest[kind].created_at() \
                .as_secs():
            newest[kind] = event
    for kind, name in ((DM_RELAYS, "relay"), (RELAY_LIST, "r")):
        if kind not in newest:
            continue
        tags = [t.to_vec() for t in newest[kind].tags()]
        urls = [t[1] for t in tags if len(t) > 1 and t[0] == name
                and (kind == DM_RELAYS or len(t) == 2 or t[2] == "read")]
        if found := _urls(urls):
            return found
    return []


def _urls(urls: list[object]) -> list[str]:
    """The first `MAX_RELAYS` distinct ws(s) URLs of sane length (anything else is skipped)."""
    return [u for u in dict.fromkeys(urls) if isinstance(u, str)
            and len(u) <= MAX_URL and u.startswith(("ws://", "wss://"))][:MAX_RELAYS]


class InboxRelays:
    """`of(pubkey)`: the relays that user reads DMs from, besides strom's own."""

    def __init__(self, fetch: Fetch, zaps: ZapRepository,
                 cache: InboxCache | None = None) -> None:
        self._fetch = fetch
        self._zaps = zaps
        self._cache = cache or InboxCache()

    async def of(self, pubkey: str) -> list[str]:
        """Cached, else looked up (within `LOOKUP_SECONDS`); [] when the user names none."""
        if (cached := self._cache.get(pubkey)) is not None:
            return cached
        author = PublicKey.parse(pubkey)
        found = await self._fetch(
            [Filter().kinds([Kind(DM_RELAYS), Kind(RELAY_LIST)]).author(author).limit(10)],
            LOOKUP_SECONDS)
        # A relay may hand over anyone's events: only the user's own lists count.
        relays = dm_relays_of([e for e in found if e.author().to_hex() == pubkey
                               and e.verify()]) or await self._zap_relays(pubkey)
        self._cache.put(pubkey, relays)
        return relays

    async def _zap_relays(self, pubkey: str) -> list[str]:
        request = await self._zaps.last_request_of(pubkey)
        if request is None:
            return []
        try:
            tags = json.loads(request).get("tags", [])
            return _urls(next((t[1:] for t in tags if t[:1] == ["relays"]), []))
        except (ValueError, AttributeError, TypeError):  # stored checked, but read defensively
            return []
