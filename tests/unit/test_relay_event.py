"""`relay.event.parse_event` reads the tags in one pass: what it finds in them (the `#x` index,
the first `d` and `expiration` values) and what it refuses, against a plain reading of NIP-01."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.event import InvalidEvent, parse_event
from strom.nostr.event_id import EventText

PUBKEY = "ab" * 32
NAMES = st.sampled_from(["d", "e", "p", "t", "D", "é", "expiration", "dd", ""])
ITEM: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(["x", "y", "", "123", "12a"]), st.integers(0, 9), st.none())
TAG = st.one_of(st.lists(st.one_of(NAMES, ITEM), max_size=3), ITEM)


def _event(tags: Any) -> dict[str, Any]:
    text = EventText.of(PUBKEY, 1000, 1, tags, "")
    return {"id": text.digest().hex(), "pubkey": PUBKEY, "created_at": 1000, "kind": 1,
            "tags": tags, "content": "", "sig": "0" * 128}


def _first(tags: list[list[str]], name: str) -> str | None:
    return next((t[1] for t in tags if len(t) >= 2 and t[0] == name), None)


@settings(max_examples=300, deadline=None)
@given(tags=st.lists(TAG, max_size=6))
def test_the_tags_are_read_as_nip01_says(tags: list[Any]) -> None:
    well_formed = all(isinstance(t, list) and all(isinstance(i, str) for i in t) for t in tags)
    expiration = _first(tags, "expiration") if well_formed else None
    if not well_formed:
        with pytest.raises(InvalidEvent, match="tags must be a list of lists of strings"):
            parse_event(_event(tags))
        return
    if expiration is not None and not expiration.isdigit():
        with pytest.raises(InvalidEvent, match="expiration tag must be a unix timestamp"):
            parse_event(_event(tags))
        return
    event = parse_event(_event(tags))
    index: dict[str, set[str]] = {}
    for t in tags:
        if len(t) >= 2 and len(t[0]) == 1 and t[0].isascii() and t[0].isalpha():
            index.setdefault(t[0], set()).add(t[1])
    assert event.tag_index == {name: frozenset(values) for name, values in index.items()}
    assert event.d_value == _first(tags, "d")
    assert event.expiration == (None if expiration is None else int(expiration))
