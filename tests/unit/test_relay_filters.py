"""Filters: validation, and the SQL query agreeing with the in-memory matcher on any data."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.event import Event, parse_event
from relay.filters import Filter, InvalidFilter, parse_filter
from relay.store import EventStore
from strom.nostr.event_id import EventText

PUBKEYS = ["a" * 64, "b" * 64, "c" * 64]
KINDS = [1, 4, 7, 1059]  # none replaceable, so every event stays stored
VALUES = ["x", "y", "z"]


def make_event(pubkey: str, created_at: int, kind: int, tags: list[list[str]],
               content: str) -> Event:
    """A well-formed event; the store does not check signatures, so a dummy one will do."""
    event_id = EventText.of(pubkey, created_at, kind, tags, content).digest().hex()
    return parse_event({"id": event_id, "pubkey": pubkey, "created_at": created_at,
                        "kind": kind, "tags": tags, "content": content, "sig": "0" * 128})


tags_strategy = st.lists(st.lists(st.sampled_from(["t", "p", "tt"]), min_size=1, max_size=1)
                         .flatmap(lambda name: st.tuples(st.just(name[0]),
                                                         st.sampled_from(VALUES + PUBKEYS))
                                  .map(list)), max_size=3)
events_strategy = st.lists(st.builds(make_event, st.sampled_from(PUBKEYS),
                                     st.integers(1000, 1003), st.sampled_from(KINDS),
                                     tags_strategy, st.sampled_from(["", "hi", "yo"])),
                           max_size=25)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


filter_strategy = st.builds(
    lambda authors, kinds, t, p, since, until, limit: {
        k: v for k, v in {"authors": authors, "kinds": kinds, "#t": t, "#p": p,
                          "since": since, "until": until, "limit": limit}.items()
        if v is not None},
    _maybe(st.lists(st.sampled_from(PUBKEYS), max_size=2)),
    _maybe(st.lists(st.sampled_from(KINDS), max_size=3)),
    _maybe(st.lists(st.sampled_from(VALUES), min_size=1, max_size=2)),
    _maybe(st.lists(st.sampled_from(PUBKEYS), min_size=1, max_size=2)),
    _maybe(st.integers(999, 1004)), _maybe(st.integers(999, 1004)), _maybe(st.integers(0, 6)))


def expected(events: list[Event], filters: list[Filter], readers: frozenset[str]) -> list[str]:
    unique = {e.id: e for e in events}.values()
    newest = sorted(unique, key=lambda e: (-e.created_at, e.id))
    found: set[str] = set()
    for f in filters:
        hits = [e for e in newest if f.matches(e) and e.visible_to(readers)]
        found.update(e.id for e in hits[: f.limit])
    return [e.id for e in newest if e.id in found]


async def stored_results(events: list[Event], filters: list[Filter],
                         readers: frozenset[str]) -> tuple[list[str], int]:
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(Path(tmp) / "r.sqlite3")
        await store.open()
        try:
            await asyncio.gather(*(store.save(e) for e in events))
            found = [event_id for event_id, _ in await store.query(filters, readers)]
            return found, await store.count(filters, readers)
        finally:
            await store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy, st.lists(filter_strategy, min_size=1, max_size=3),
       st.frozensets(st.sampled_from(PUBKEYS), max_size=2))
def test_sql_agrees_with_memory(events: list[Event], raw_filters: list[dict[str, Any]],
                                readers: frozenset[str]) -> None:
    filters = [parse_filter(f, default_limit=500, max_limit=5000) for f in raw_filters]
    found, count = asyncio.run(stored_results(events, filters, readers))
    assert found == expected(events, filters, readers)
    unlimited = [parse_filter({**f, "limit": 5000}, default_limit=500, max_limit=5000)
                 for f in raw_filters]
    assert count == len(expected(events, unlimited, readers))


def test_limit_defaults_and_caps() -> None:
    assert parse_filter({}, default_limit=500, max_limit=5000).limit == 500
    assert parse_filter({"limit": 10**6}, default_limit=500, max_limit=5000).limit == 5000


@pytest.mark.parametrize("raw, reason", [
    ([], "a filter must be a JSON object"),
    ({"ids": "abc"}, "ids must be a list"),
    ({"authors": ["ABC"]}, "authors must be 64-character lowercase hex strings"),
    ({"kinds": [-1]}, "kinds must be an integer from 0 to 65535"),
    ({"kinds": [True]}, "kinds must be an integer from 0 to 65535"),
    ({"#t": "x"}, "#t must be a list of at most 3 strings"),
    ({"#": ["x"]}, "only single-letter tags can be queried"),
    ({"since": "yesterday"}, "since must be an integer"),
    ({"limit": -1}, "limit must be an integer"),
    ({"kinds": [1, 2, 3, 4]}, "kinds must be a list of at most 3 integers"),
])
def test_invalid_filters(raw: Any, reason: str) -> None:
    with pytest.raises(InvalidFilter, match=reason):
        parse_filter(raw, default_limit=500, max_limit=5000, max_items=3)
