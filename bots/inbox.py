"""Where a nostr user reads their direct messages and writes their profile (NIP-17 / NIP-65
outbox model).

A payer's phone client reads NIP-17 DMs from its kind 10050 relays, else from the read
relays of its kind 10002 list (NIP-65), and may read strom's relays not at all; it reads NIP-04
DMs from its 10002 read relays; it writes its profile (kind 0, `lud16`) to its 10002 write
relays. Their lists are looked up through strom's shared client on strom's relays, each lookup bounded in time; when
they have none, the relays of their newest zap request (which strom stored) stand in. The
answer, empty too, is cached for `TTL` seconds and for at most `SIZE` users, so a DM costs one
lookup per payer per TTL and memory stays bounded; DMs to one payer sent while their lookup
runs share it. Everything here comes from the user and may
lie: only their own signed lists count, and at most `MAX_RELAYS` URLs of them.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from nostr_sdk import Event, Filter, Kind, PublicKey

from bots.events import DM_RELAYS, RELAY_LIST
from strom.lightning.shared import SingleFlight
from strom.store.zaps import ZapRepository

log = logging.getLogger(__name__)

TTL = 600.0
SIZE = 2000
LOOKUP_SECONDS = 2.0
MAX_RELAYS = 5
MAX_URL = 256

Fetch = Callable[[list[Filter], float], Awaitable[list[Event]]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UserRelays:
    """One user's relays, from their own lists (each at most `MAX_RELAYS`)."""

    dm: list[str]  # kind 10050
    read: list[str]  # kind 10002, unmarked or `read`
    write: list[str]  # kind 10002, unmarked or `write`


class InboxCache(Generic[T]):
    """pubkey -> what was found, each entry forgotten after `ttl` seconds; the oldest makes
    room."""

    def __init__(self, ttl: float = TTL, size: int = SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._size, self._clock = ttl, size, clock
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, pubkey: str) -> T | None:
        """The cached value (maybe no relays), or None when unknown or stale."""
        entry = self._entries.get(pubkey)
        if entry is None or entry[0] <= self._clock():
            self._entries.pop(pubkey, None)
            return None
        return entry[1]

    def put(self, pubkey: str, relays: T) -> None:
        self._entries.pop(pubkey, None)
        self._entries[pubkey] = (self._clock() + self._ttl, relays)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


def relays_of(lists: list[Event]) -> UserRelays:
    """From a user's kind 10050 and 10002 events, the newest of each kind: its relays."""
    newest: dict[int, Event] = {}
    for event in lists:
        kind = event.kind().as_u16()
        if kind not in newest or event.created_at().as_secs() > newest[kind].created_at() \
                .as_secs():
            newest[kind] = event

    def tagged(kind: int, name: str, marker: str | None = None) -> list[str]:
        if kind not in newest:
            return []
        tags = [t.to_vec() for t in newest[kind].tags()]
        return _urls([t[1] for t in tags if len(t) > 1 and t[0] == name
                      and (marker is None or len(t) == 2 or t[2] == marker)])

    return UserRelays(dm=tagged(DM_RELAYS, "relay"), read=tagged(RELAY_LIST, "r", "read"),
                      write=tagged(RELAY_LIST, "r", "write"))


def _urls(urls: list[object]) -> list[str]:
    """The first `MAX_RELAYS` distinct ws(s) URLs of sane length (anything else is skipped)."""
    return [u for u in dict.fromkeys(urls) if isinstance(u, str)
            and len(u) <= MAX_URL and u.startswith(("ws://", "wss://"))][:MAX_RELAYS]


class InboxRelays:
    """A user's relays besides strom's own: `of` (NIP-17 DMs), `read_of` (NIP-04 DMs),
    `write_of` (where their profile is)."""

    def __init__(self, fetch: Fetch, zaps: ZapRepository,
                 cache: InboxCache[UserRelays] | None = None) -> None:
        self._fetch = fetch
        self._zaps = zaps
        self._cache: InboxCache[UserRelays] = cache or InboxCache()
        self._looking = SingleFlight()

    async def close(self) -> None:
        """Wait for the lookups under way (each bounded by `LOOKUP_SECONDS`)."""
        await self._looking.drain()

    async def of(self, pubkey: str) -> list[str]:
        """Where they read gift wraps: 10050, else 10002 read, else their zap request's."""
        found = await self._lists(pubkey)
        return found.dm or found.read or await self._zap_relays(pubkey)

    async def read_of(self, pubkey: str) -> list[str]:
        """Where they read NIP-04 DMs: 10002 read relays, else their zap request's."""
        return (await self._lists(pubkey)).read or await self._zap_relays(pubkey)

    async def write_of(self, pubkey: str) -> list[str]:
        """Where they publish (their profile among it): 10002 write relays."""
        return (await self._lists(pubkey)).write

    async def _lists(self, pubkey: str) -> UserRelays:
        """Cached, else looked up (within `LOOKUP_SECONDS`); empty when the user has none."""
        if (cached := self._cache.get(pubkey)) is not None:
            return cached
        return await self._looking.run(pubkey, lambda: self._look_up(pubkey))

    async def _look_up(self, pubkey: str) -> UserRelays:
        author = PublicKey.parse(pubkey)
        found = await self._fetch(
            [Filter().kinds([Kind(DM_RELAYS), Kind(RELAY_LIST)]).author(author).limit(10)],
            LOOKUP_SECONDS)
        # A relay may hand over anyone's events: only the user's own lists count.
        relays = relays_of([e for e in found if e.author().to_hex() == pubkey and e.verify()])
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
