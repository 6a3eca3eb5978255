"""The relay's SQLite store on its own: group commit, failure isolation, close."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

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
