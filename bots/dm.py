"""Encrypted direct messages: open NIP-17 gift wraps and NIP-04 messages, answer in kind."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from nostr_sdk import (
    Event,
    EventBuilder,
    Keys,
    Kind,
    PublicKey,
    Tag,
    UnwrappedGift,
    nip04_decrypt,
    nip04_encrypt,
    nip17_make_private_msg,
)

log = logging.getLogger(__name__)

GIFT_WRAP, NIP04_DM, CHAT_MESSAGE = 1059, 4, 14
MAX_TEXT = 2000

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


def reply(keys: Keys, receiver_hex: str, text: str, protocol: Protocol) -> Event:
    """An answer in the protocol the driver used."""
    receiver = PublicKey.parse(receiver_hex)
    if protocol == "nip04":
        content = nip04_encrypt(keys.secret_key(), receiver, text)
        return (EventBuilder(Kind(NIP04_DM), content)
                .tags([Tag.parse(["p", receiver_hex])]).finalize(keys))
    return nip17_make_private_msg(keys, receiver, text)
