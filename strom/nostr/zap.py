"""NIP-57 zaps: checking a zap request (kind 9734) and building its receipt (kind 9735).

nostr-sdk has no zap helpers, so the rules of NIP-57 Appendix D live here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from nostr_sdk import Event, EventBuilder, Keys, Kind, Tag, Timestamp

from strom.lnurl.errors import LnurlError

ZAP_REQUEST = 9734
ZAP_RECEIPT = 9735
# The request as it will stand in the receipt's `description` tag (JSON-escaped, so quotes
# count twice), and its `e`/`a` references, which the receipt copies: bounded so the receipt
# stays within the 16 KB events relays commonly accept.
MAX_REQUEST_BYTES = 8192
MAX_REFERENCE_CHARS = 300
# A zap request is public once its receipt is out, so the LNURL callback takes one only while
# it is fresh (signed within this many seconds of now, either way: clocks drift) and only
# once (its event id is claimed in the store). Old requests cannot be replayed after the
# store forgets them, as long as it keeps them longer than this window.
FRESH_SECONDS = 600


@dataclass(frozen=True, slots=True)
class ZapRequest:
    raw: str                 # exactly as received: its SHA-256 is the invoice's description hash
    id: str                  # the request's own event id (hex), used once
    created_at: int          # unix seconds, as signed
    sender: str              # hex pubkey of the zapper (the session's payer)
    recipient: str           # hex pubkey of the charge point
    relays: tuple[str, ...]
    amount_msat: int | None
    event_id: str | None     # the zapped event (`e`), if any
    coordinate: str | None   # the zapped addressable event (`a`), if any
    content: str


def _tags(event: Event) -> list[list[str]]:
    return [tag.to_vec() for tag in event.tags()]


def _coordinates(tags: list[list[str]]) -> list[str]:
    return [t[1] for t in tags if t[0] == "a" and len(t) > 1]


def parse_zap_request(raw: str, recipient_hex: str, amount_msat: int) -> ZapRequest:
    """Validate a zap request for `recipient_hex` and `amount_msat`, or raise `LnurlError`."""
    if (len(raw.encode()) > MAX_REQUEST_BYTES
            or len(json.dumps(raw, ensure_ascii=False).encode()) > MAX_REQUEST_BYTES):
        raise LnurlError(f"zap request is too large (at most {MAX_REQUEST_BYTES} bytes as JSON)")
    try:
        data = json.loads(raw)
        event = Event.from_json(raw)
    except Exception:
        raise LnurlError("zap request is not a valid nostr event") from None
    if not isinstance(data, dict) or data.get("kind") != ZAP_REQUEST:
        raise LnurlError(f"zap request must be a kind {ZAP_REQUEST} event")
    if not event.verify():
        raise LnurlError("zap request has an invalid id or signature")
    tags = _tags(event)
    recipients = [t[1] for t in tags if t[0] == "p" and len(t) > 1]
    if len(recipients) != 1:
        raise LnurlError("zap request must have exactly one p tag")
    if recipients[0].lower() != recipient_hex.lower():
        raise LnurlError("zap request is for another recipient")
    events = [t[1] for t in tags if t[0] == "e" and len(t) > 1]
    if len(events) > 1:
        raise LnurlError("zap request may have at most one e tag")
    if any(len(ref) > MAX_REFERENCE_CHARS for ref in [*events, *_coordinates(tags)]):
        raise LnurlError(f"zap request e/a tags may have at most {MAX_REFERENCE_CHARS} characters")
    relays = next((tuple(t[1:]) for t in tags if t[0] == "relays"), ())
    if not relays:
        raise LnurlError("zap request needs a relays tag")
    amount = next((t[1] for t in tags if t[0] == "amount" and len(t) > 1), None)
    if amount is not None:
        if not amount.isdigit() or int(amount) != amount_msat:
            raise LnurlError(f"zap request amount {amount} does not match amount {amount_msat}")
    coordinate = next(iter(_coordinates(tags)), None)
    if coordinate is not None and len(coordinate.split(":")) < 3:
        raise LnurlError("zap request a tag is not an event coordinate")
    return ZapRequest(raw=raw, id=event.id().to_hex(), created_at=event.created_at().as_secs(),
                      sender=event.author().to_hex(), recipient=recipients[0].lower(),
                      relays=relays, amount_msat=int(amount) if amount else None,
                      event_id=events[0] if events else None, coordinate=coordinate,
                      content=event.content())


def check_fresh(request: ZapRequest, now: float, window: int = FRESH_SECONDS) -> None:
    """Refuse a zap request signed more than `window` seconds before or after `now`."""
    age = now - request.created_at
    if age > window:
        raise LnurlError(f"zap request is too old (signed {int(age // 60)} minutes ago; at most "
                         f"{window // 60} minutes are accepted): zap again")
    if -age > window:
        raise LnurlError(f"zap request is dated {int(-age // 60)} minutes in the future (at "
                         f"most {window // 60} are accepted): check your device's clock")


def zap_receipt(keys: Keys, request: ZapRequest, bolt11: str, preimage: str | None,
                paid_at: datetime) -> Event:
    """The kind 9735 receipt, signed by the LNURL server's `nostrPubkey` (`keys`)."""
    tags = [["p", request.recipient], ["P", request.sender], ["bolt11", bolt11],
            ["description", request.raw]]
    if request.event_id:
        tags.append(["e", request.event_id])
    if request.coordinate:
        tags.append(["a", request.coordinate])
    if preimage:
        tags.append(["preimage", preimage])
    return (EventBuilder(Kind(ZAP_RECEIPT), "")
            .tags([Tag.parse(t) for t in tags])
            .custom_created_at(Timestamp.from_secs(int(paid_at.timestamp())))
            .finalize(keys))


def receipt_request(receipt: Event) -> ZapRequest | None:
    """The zap request embedded in a receipt (its `description`), if it is well formed."""
    tags = _tags(receipt)
    raw = next((t[1] for t in tags if t[0] == "description" and len(t) > 1), None)
    recipient = next((t[1] for t in tags if t[0] == "p" and len(t) > 1), None)
    if raw is None or recipient is None:
        return None
    try:
        request_json = json.loads(raw)
        amount = next((int(t[1]) for t in request_json.get("tags", [])
                       if t and t[0] == "amount" and len(t) > 1), 0)
        return parse_zap_request(raw, recipient, amount)
    except (LnurlError, ValueError, AttributeError):
        return None


def receipt_bolt11(receipt: Event) -> str | None:
    return next((t[1] for t in _tags(receipt) if t[0] == "bolt11" and len(t) > 1), None)
