"""Events strom signs itself (`bots/signed.py`): nostr-sdk, an implementation of its own,
computes the same id and verifies the signature, whatever the content and tags hold."""

from __future__ import annotations

import gc
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nostr_sdk import Event, EventBuilder, Keys, Kind, Tag, Timestamp

from bots import signed
from bots.signed import SignedEvent, public_hex, replacement_key, sign

KEYS = Keys.generate()
# Any text that has a UTF-8 form: control characters, quotes, backslashes, emoji, U+2028 …
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=60)


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from([0, 1, 10002, 30333]), content=TEXT,
       tags=st.lists(st.lists(TEXT, min_size=1, max_size=4), max_size=5),
       created_at=st.integers(0, 2**32))
def test_nostr_sdk_computes_the_same_id_and_verifies_it(
        kind: int, content: str, tags: list[list[str]], created_at: int) -> None:
    ours = sign(KEYS, kind, content, tags, created_at)
    theirs = (EventBuilder(Kind(kind), content).tags([Tag.parse(t) for t in tags])
              .custom_created_at(Timestamp.from_secs(created_at)).finalize(KEYS))
    assert ours.id == theirs.id().to_hex()
    parsed = Event.from_json(ours.json)
    assert parsed.verify()
    assert parsed.content() == content and [t.to_vec() for t in parsed.tags()] == tags
    assert (ours.pubkey, ours.kind) == (KEYS.public_key().to_hex(), kind)


def test_a_status_replaces_the_same_chargers_older_one_only() -> None:
    pubkey = KEYS.public_key().to_hex()
    assert sign(KEYS, 30333, "", [["d", "cp-1"]]).replaces == (30333, pubkey, "cp-1")
    assert replacement_key(30333, pubkey, []) == (30333, pubkey, "")
    assert sign(KEYS, 0, "{}", []).replaces == (0, pubkey)
    assert sign(KEYS, 10002, "", [["r", "wss://x"]]).replaces == (10002, pubkey)
    assert sign(KEYS, 1, "hello", [["d", "x"]]).replaces is None


def test_an_event_nostr_sdk_built_keeps_its_json_and_key() -> None:
    built = EventBuilder(Kind(30333), "x").tags([Tag.parse(["d", "cp-2"])]).finalize(KEYS)
    signed = SignedEvent.of(built)
    assert signed.sdk() is built and json.loads(signed.json)["id"] == signed.id
    assert signed.replaces == (30333, KEYS.public_key().to_hex(), "cp-2")


def test_text_without_a_utf8_form_is_refused_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        sign(KEYS, 1, "\ud800", [])


def test_a_pubkey_is_remembered_only_while_its_keys_live() -> None:
    keys = Keys.generate()
    expected = keys.public_key().to_hex()
    assert public_hex(keys) == expected and public_hex(keys) == expected
    assert sign(keys, 1, "hi", []).pubkey == expected
    key_id = id(keys)
    assert key_id in signed._pubkeys
    del keys
    gc.collect()
    assert key_id not in signed._pubkeys
    assert all(ref() is not None for ref, _ in signed._pubkeys.values())
    other = Keys.generate()  # may get the freed object's id(): its own key, not the old one
    assert public_hex(other) == other.public_key().to_hex()
