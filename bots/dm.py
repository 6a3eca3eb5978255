"""Encrypted direct messages: open NIP-17 gift wraps and NIP-04 messages, answer in kind."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from nostr_sdk import (
    Event,
    EventBuilder,
    Keys,
    Kind,
    PublicKey,
    Tag,
    Timestamp,
    UnwrappedGift,
    nip04_decrypt,
    nip04_encrypt,
    nip59_make_gift_wrap,
)

log = logging.getLogger(__name__)

GIFT_WRAP, NIP04_DM, CHAT_MESSAGE = 1059, 4, 14
MAX_TEXT = 2000
# An answer's text as JSON (escapes count) at most this long: its NIP-17 gift wrap, which
# pads and base64-encodes it twice, then stays within the 4 KB content relays commonly accept.
MAX_REPLY_BYTES = 1200
CUT = "…"

Protocol = Literal["nip17", "nip04"]


@dataclass(frozen=True, slots=True)
class Message:
    cp_id: str
    sender: str          # hex pubkey, proven by the signature (NIP-04) or the seal (NIP-17)
    text: str
    protocol: Protocol


def recipient(event: Event) -> str | None:
    return next((t.to_vec()[1] for t in event.tags() if t.to_vec()[:1] == ["p"]
                 and len(t.to_vec()) > 1), None)


def open_message(event: Event, cp_id: str, keys: Keys) -> Message | None:
    """The decrypted message, or None (logged) when it is forged, malformed or not for us."""
    kind = event.kind().as_u16()
    try:
        if not event.verify():
            log.warning("nostr: rejected DM %s to %s: bad signature", event.id().to_hex(), cp_id)
            return None
        if kind == NIP04_DM:
            text = nip04_decrypt(keys.secret_key(), event.author(), event.content())
            return Message(cp_id, event.author().to_hex(), text[:MAX_TEXT], "nip04")
        if kind == GIFT_WRAP:
            gift = UnwrappedGift.from_gift_wrap(keys, event)
            rumor = gift.rumor()
            # The seal's signer is the sender; a rumor claiming another author is forged.
            if rumor.kind().as_u16() != CHAT_MESSAGE or rumor.author().to_hex() != \
                    gift.sender().to_hex():
                log.warning("nostr: rejected gift wrap to %s: not a chat message from its sealer",
                            cp_id)
                return None
            return Message(cp_id, gift.sender().to_hex(), rumor.content()[:MAX_TEXT], "nip17")
    except Exception as exc:  # undecryptable: forged or for another key
        log.warning("nostr: rejected kind %d DM to %s: %s", kind, cp_id, type(exc).__name__)
    return None


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


def fit_text(text: str) -> str:
    """`text`, or as much of it as fits `MAX_REPLY_BYTES`, ending in "…"."""
    if _json_bytes(text) <= MAX_REPLY_BYTES:
        return text
    low, high = 0, len(text)  # the longest prefix that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if _json_bytes(text[:middle] + CUT) <= MAX_REPLY_BYTES:
            low = middle
        else:
            high = middle - 1
    return text[:low] + CUT


def reply(keys: Keys, receiver_hex: str, text: str, protocol: Protocol,
          created_at: int | None = None) -> Event:
    """An answer in the protocol the driver used, dated `created_at` (default: now).

    For NIP-17 the date is the rumor's: that is what clients sort a conversation by, while the
    gift wrap's own date is randomised on purpose. A text too long for relays is cut.
    """
    receiver = PublicKey.parse(receiver_hex)
    text = fit_text(text)
    stamp = Timestamp.from_secs(created_at) if created_at is not None else Timestamp.now()
    p_tag = Tag.parse(["p", receiver_hex])
    if protocol == "nip04":
        content = nip04_encrypt(keys.secret_key(), receiver, text)
        return (EventBuilder(Kind(NIP04_DM), content).tags([p_tag]).custom_created_at(stamp)
                .finalize(keys))
    rumor = (EventBuilder(Kind(CHAT_MESSAGE), text).tags([p_tag]).custom_created_at(stamp)
             .finalize_unsigned(keys.public_key()))
    return nip59_make_gift_wrap(keys, receiver, rumor)


@dataclass
class _Lane:
    """One sender → receiver conversation: its lock and the last date it used."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last: int = 0
    users: int = 0


class DirectMessenger:
    """Sends DMs so that each receiver sees them in the order strom decided them.

    Every message to one receiver gets a strictly later `created_at` than the one before
    (NIP-17 clients sort by it, and two messages decided in the same second would otherwise tie
    and show in any order), and messages to one receiver are published one after the other,
    in the order `send` was called, so relays store and forward them in that order too.

    A DM, once published to strom's relays, goes to `elsewhere(receiver, event)` too, in the
    same lane: the relays the receiver reads (`bots.inbox`, `bots.relay_delivery`).
    """

    def __init__(self, publish: Callable[[Event], Awaitable[bool]],
                 clock: Callable[[], float] = time.time,
                 elsewhere: Callable[[str, Event], Awaitable[None]] | None = None) -> None:
        self._publish = publish
        self._clock = clock
        self._elsewhere = elsewhere
        self._lanes: dict[tuple[str, str], _Lane] = {}

    async def send(self, keys: Keys, receiver_hex: str, text: str, protocol: Protocol) -> bool:
        """Sign and publish one DM; True when a relay accepted it."""
        now = int(self._clock())
        self._forget_idle(now)
        key = (keys.public_key().to_hex(), receiver_hex)
        lane = self._lanes.setdefault(key, _Lane())
        # Dated now, before waiting for the lane: the date follows the order of decisions.
        lane.last = max(now, lane.last + 1)
        created_at = lane.last
        lane.users += 1
        try:
            async with lane.lock:
                event = reply(keys, receiver_hex, text, protocol, created_at)
                published = await self._publish(event)
                if self._elsewhere is not None:
                    await self._elsewhere(receiver_hex, event)
                return published
        finally:
            lane.users -= 1

    def _forget_idle(self, now: int) -> None:
        """Drop lanes nobody waits on whose last date is in the past: a new lane would choose
        the same dates, so memory stays bounded by the conversations of the last moments."""
        for key in [k for k, lane in self._lanes.items() if not lane.users and lane.last < now]:
            del self._lanes[key]
