"""The relay's SQLite store on its own: group commit, failure isolation, close, replacement."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.event import Event
from relay.filters import parse_filter
from relay.store import EventStore
from tests.unit.test_relay_filters import PUBKEYS, make_event

ALL = [parse_filter({"limit": 5000}, default_limit=500, max_limit=5000)]


async def test_a_failing_event_does_not_sink_its_batch(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    store = EventStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        # A real SQLite failure for one event, as a full disk or a corrupt page would give.
        db.execute("CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.raw LIKE '%poison%' "
                   "BEGIN SELECT RAISE(ABORT, 'poisoned'); END")
    store = EventStore(path)
    await store.open()
    try:
        events = [make_event(PUBKEYS[0], 1000 + i, 1, [], "poison" if i == 5 else f"ok {i}")
                  for i in range(10)]
        # Queued in one go, so they share a commit.
        results = await asyncio.gather(*(store.save(e) for e in events))
        assert [r.accepted for r in results] == [i != 5 for i in range(10)]
        assert results[5].message.startswith("error:")
        stored = {event_id for event_id, _ in await store.query(ALL, frozenset())}
        assert stored == {e.id for i, e in enumerate(events) if i != 5}
    finally:
        await store.close()


async def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    store = EventStore(path)
    await store.open()
    futures = [store.save(make_event(PUBKEYS[1], 2000 + i, 1, [], "queued")) for i in range(300)]
    await store.close()
    assert all(f.done() and f.result().stored for f in futures)
    late = store.save(make_event(PUBKEYS[1], 1, 1, [], "late"))
    assert late.done() and not late.result().accepted
    reopened = EventStore(path)
    await reopened.open()
    try:
        assert await reopened.count(ALL, frozenset()) == 300
    finally:
        await reopened.close()


_TAG = st.tuples(st.sampled_from(["t", "g", "d", "p"]), st.sampled_from(["x", "y", "z"])).map(list)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(versions=st.lists(st.tuples(st.sampled_from(PUBKEYS[:2]), st.sampled_from([10002, 30333]),
                                   st.integers(1000, 1004), st.lists(_TAG, max_size=4),
                                   st.sampled_from(["a", "b"])), min_size=1, max_size=12))
def test_a_replaced_event_is_found_by_its_own_tags_only(
        tmp_path_factory: pytest.TempPathFactory,
        versions: list[tuple[str, int, int, list[list[str]], str]]) -> None:
    """A newer version takes its older one's row (`_replace`): every query by tag finds the
    version that won (NIP-01: newer, or on a tie the lowest id) and never a replaced one."""
    events = [make_event(pubkey, at, kind, tags, content)
              for pubkey, kind, at, tags, content in versions]
    winners: dict[tuple[str, int, str | None], Event] = {}
    for event in events:
        address = (event.pubkey, event.kind, event.d_tag)
        old = winners.get(address)
        if old is None or (event.created_at, old.id) > (old.created_at, event.id):
            winners[address] = event
    filters = [{"limit": 100}] + [{f"#{name}": [value], "limit": 100}
                                  for name in "tgdp" for value in "xyz"]

    async def run() -> None:
        store = EventStore(tmp_path_factory.mktemp("replace") / "r.sqlite3")
        await store.open()
        try:
            for event in events:  # one at a time: each replaces what the last one stored
                await store.save(event)
            for raw in filters:
                f = parse_filter(raw, default_limit=500, max_limit=5000)
                found = {event_id for event_id, _ in await store.query([f], frozenset())}
                assert found == {e.id for e in winners.values() if f.matches(e)}, raw
        finally:
            await store.close()

    asyncio.run(run())
