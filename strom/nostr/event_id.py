"""NIP-01 event ids: the sha256 of `[0,pubkey,created_at,kind,tags,content]` as compact JSON.

Python's `json.dumps(..., separators=(",", ":"), ensure_ascii=False)` escapes exactly what
serde_json (nostr-sdk) escapes (`"`, `\\`, `\\b\\f\\n\\r\\t` by name, other control characters
as `\\u00xx`), so both compute the same id; `tests/nostr/test_signed.py` checks that against
nostr-sdk. Used to verify events (`relay/event.py`) and to sign them (`bots/signed.py`).
"""

from __future__ import annotations

import hashlib
import json


def event_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]],
             content: str) -> bytes:
    """The 32-byte id; UnicodeEncodeError for a lone surrogate (no UTF-8 form, no id)."""
    serialized = json.dumps([0, pubkey, created_at, kind, tags, content],
                            separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(serialized.encode()).digest()
