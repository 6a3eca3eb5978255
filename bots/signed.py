"""Events as strom signs and publishes them: their JSON and what the lanes need to know.

nostr-sdk's Python binding copies every string into Rust one byte at a time (uniffi's
`RustBufferBuilder.write`, mozilla/uniffi-rs#2824), so building a 1.5 KB status with
`EventBuilder` and 18 `Tag.parse` calls took ~0.9 ms, most of it copying. Here the id is the
NIP-01 hash (`strom.nostr.event_id`) and only those 32 bytes cross into nostr-sdk, whose
`Keys.sign_schnorr` signs them (BIP-340): ~0.1 ms. nostr-sdk's own `Event` is made from the
JSON only when a relay reached through nostr-sdk's client needs it (`sdk()`).
"""

from __future__ import annotations

import json
import time
import weakref
from dataclasses import dataclass, field

from nostr_sdk import Event, Keys

from strom.nostr.event_id import EventText

_pubkeys: dict[int, tuple[weakref.ref[Keys], str]] = {}

# What a newer version of an event shares with it (NIP-01), or None for a regular event.
Replaces = tuple[int, str] | tuple[int, str, str] | None


@dataclass(slots=True, eq=False)
class SignedEvent:
    """A signed event: `json` is what goes to a relay; `replaces` its replacement key."""

    id: str
    pubkey: str
    kind: int
    json: str
    replaces: Replaces
    _sdk: Event | None = field(default=None, repr=False)

    @classmethod
    def of(cls, event: Event) -> SignedEvent:
        """One built by nostr-sdk (gift wraps, zap receipts, …)."""
        text = event.as_json()
        data = json.loads(text)
        return cls(data["id"], data["pubkey"], data["kind"], text,
                   replacement_key(data["kind"], data["pubkey"], data["tags"]), event)

    def sdk(self) -> Event:
        """nostr-sdk's `Event` of it (parsed once, the first time it is asked for)."""
        if self._sdk is None:
            self._sdk = Event.from_json(self.json)
        return self._sdk


def replacement_key(kind: int, pubkey: str, tags: list[list[str]]) -> Replaces:
    """NIP-01: (kind, pubkey) for replaceable kinds, (kind, pubkey, d) for addressable ones."""
    if kind in (0, 3) or 10000 <= kind < 20000:
        return (kind, pubkey)
    if 30000 <= kind < 40000:
        return (kind, pubkey, next((t[1] for t in tags if len(t) > 1 and t[0] == "d"), ""))
    return None


def sign(keys: Keys, kind: int, content: str, tags: list[list[str]],
         created_at: int | None = None) -> SignedEvent:
    """The event signed by `keys`, dated `created_at` (default: now)."""
    pubkey = public_hex(keys)
    at = int(time.time()) if created_at is None else int(created_at)
    text = EventText.of(pubkey, at, kind, tags, content)
    digest = text.digest()  # a lone surrogate raises, as before
    event_hex = digest.hex()
    return SignedEvent(event_hex, pubkey, kind,
                       text.event_json(event_hex, keys.sign_schnorr(digest)),
                       replacement_key(kind, pubkey, tags))


def public_hex(keys: Keys) -> str:
    """`keys.public_key().to_hex()`, remembered while `keys` lives: the binding's calls cost
    ~20 µs a status (a fifth of its signing). Held weakly: no secret outlives its Keys here."""
    entry = _pubkeys.get(id(keys))
    if entry is not None and entry[0]() is keys:
        return entry[1]
    pubkey = keys.public_key().to_hex()
    key_id = id(keys)
    # The callback runs as `keys` is freed, before its id() can be given to another object.
    _pubkeys[key_id] = (weakref.ref(keys, lambda _: _pubkeys.pop(key_id, None)), pubkey)
    return pubkey
