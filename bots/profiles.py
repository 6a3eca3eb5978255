"""A payer's lightning address (`lud16` of their kind 0 profile), for refunds to zappers.

Their profile is looked up on strom's relays and on the write relays of their NIP-65 list
(kind 10002: where their client publishes), both at once and bounded in time; the newest
profile signed by the payer counts. A relay may hand over anyone's events, or junk.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from nostr_sdk import Event, Filter, Kind, PublicKey

from bots.events import PROFILE
from bots.inbox import LOOKUP_SECONDS, Fetch, InboxRelays

FetchElsewhere = Callable[[list[str], dict[str, object], float], Awaitable[list[Event]]]


class PayerProfiles:
    """`lud16_of(pubkey)`: their lightning address, or None (the core's `PayerAddresses`)."""

    def __init__(self, fetch: Fetch, relays: InboxRelays, elsewhere: FetchElsewhere) -> None:
        self._fetch = fetch
        self._relays = relays
        self._elsewhere = elsewhere

    async def lud16_of(self, pubkey: str) -> str | None:
        ours, theirs = await asyncio.gather(
            self._fetch([Filter().kinds([Kind(PROFILE)]).author(PublicKey.parse(pubkey))
                         .limit(1)], LOOKUP_SECONDS),
            self._on_their_relays(pubkey))
        profiles = [p for p in [*ours, *theirs] if p.kind().as_u16() == PROFILE
                    and p.author().to_hex() == pubkey and p.verify()]
        profiles.sort(key=lambda p: p.created_at().as_secs(), reverse=True)
        return next((address for p in profiles if (address := lud16(p))), None)

    async def _on_their_relays(self, pubkey: str) -> list[Event]:
        write = await self._relays.write_of(pubkey)
        if not write:
            return []
        return await self._elsewhere(write, {"kinds": [PROFILE], "authors": [pubkey],
                                             "limit": 1}, LOOKUP_SECONDS)


def lud16(profile: Event) -> str | None:
    """The profile's lightning address, when it looks like one."""
    try:
        value = json.loads(profile.content()).get("lud16")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and "@" in value else None
