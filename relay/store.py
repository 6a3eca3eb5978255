"""The relay's SQLite file: events and their tags, replacement, deletion (NIP-09), expiry.

One writer task takes events from a queue and commits them in batches (group commit: what
arrives while a commit runs goes into the next one), so an `OK` is only sent for an event that
is on disk. The write and read connections each live in a thread of their own; a whole batch
runs in one hop to the writer thread instead of one hop per statement.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from relay.event import DELETION_KIND, Event
from relay.filters import Filter
from relay.query import count_sql, select_sql
from strom.security import create_private_file

log = logging.getLogger(__name__)
T = TypeVar("T")

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KIND = re.compile(r"[0-9]{1,5}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    pubkey TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    d_tag TEXT,                -- NULL unless replaceable ('') or addressable
    expires_at INTEGER,
    raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_created ON events(created_at);
CREATE INDEX IF NOT EXISTS events_pubkey ON events(pubkey, created_at);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS events_address ON events(pubkey, kind, d_tag)
    WHERE d_tag IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_expiry ON events(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS tags (
    event_seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_lookup ON tags(name, value, event_seq);
CREATE INDEX IF NOT EXISTS tags_event ON tags(event_seq);
-- NIP-09: ids deleted by a pubkey (refused if that pubkey publishes them again), and
-- addresses deleted up to a time.
CREATE TABLE IF NOT EXISTS deleted_ids (
    id TEXT NOT NULL, pubkey TEXT NOT NULL, PRIMARY KEY (id, pubkey)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deleted_addresses (
    pubkey TEXT NOT NULL, kind INTEGER NOT NULL, d_tag TEXT NOT NULL, until INTEGER NOT NULL,
    PRIMARY KEY (pubkey, kind, d_tag)
) WITHOUT ROWID;
PRAGMA user_version = 1;
"""


# What decides an event's fate, in one statement: stored already, deleted by id (NIP-09), and
# for a replaceable or addressable one its address deleted until when and the version stored.
_CHECK = ("SELECT (SELECT 1 FROM events WHERE id = ?1), "
          "(SELECT 1 FROM deleted_ids WHERE id = ?1 AND pubkey = ?2)")
_CHECK_ADDRESS = (
    "SELECT (SELECT 1 FROM events WHERE id = ?1), "
    "(SELECT 1 FROM deleted_ids WHERE id = ?1 AND pubkey = ?2), "
    "(SELECT until FROM deleted_addresses WHERE pubkey = ?2 AND kind = ?3 AND d_tag = ?4), "
    "old.seq, old.created_at, old.id "
    "FROM (SELECT 1) LEFT JOIN events old ON old.pubkey = ?2 AND old.kind = ?3 AND old.d_tag = ?4")


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What to answer in `OK`; `stored` means the event is new and goes to live subscribers."""

    accepted: bool
    message: str
    stored: bool


_STORED = SaveResult(True, "", True)
_DUPLICATE = SaveResult(True, "duplicate: already have this event", False)
_DELETED = SaveResult(False, "blocked: this event was deleted by its author", False)
_REPLACED = SaveResult(False, "duplicate: a newer version of this event is stored", False)
_FAILED = SaveResult(False, "error: could not save the event", False)


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
        return conn
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a committed batch survives power loss, which is what an OK promises.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript(SCHEMA)
    return conn


class EventStore:
    """Persistence for the relay: `await open()`, `save(event)`, `query`, `count`, `close()`."""

    def __init__(self, path: Path, *, max_batch: int = 2000) -> None:
        self.path = path
        self._max_batch = max_batch
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="relay-db-write")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="relay-db-read")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._queue: asyncio.Queue[tuple[Event, asyncio.Future[SaveResult]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def open(self) -> None:
        """Create or open the file (WAL) and start the writer task."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private_file(self.path)  # DMs and gift wraps are stored here
        self._wconn = await self._run(self._writer, lambda: _connect(self.path, readonly=False))
        self._rconn = await self._run(self._reader, lambda: _connect(self.path, readonly=True))
        self._task = asyncio.create_task(self._write_loop(), name="relay-db-writer")

    async def close(self) -> None:
        """Commit what is queued, then close the file."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        for pool, conn in ((self._writer, self._wconn), (self._reader, self._rconn)):
            if conn is not None:
                await self._run(pool, conn.close)
        self._wconn = self._rconn = None
        self._writer.shutdown(wait=False)
        self._reader.shutdown(wait=False)

    def save(self, event: Event) -> asyncio.Future[SaveResult]:
        """Queue `event` for the next commit; the future resolves once that commit is done."""
        future: asyncio.Future[SaveResult] = asyncio.get_running_loop().create_future()
        if self._task is None:
            future.set_result(_FAILED)
        else:
            self._queue.put_nowait((event, future))
        return future

    async def _write_loop(self) -> None:
        closing = False
        while not closing:
            item = await self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    closing = True
                    break
                batch.append(nxt)
            events = [e for e, _ in batch]
            try:
                results = await self._run(self._writer, self._write_batch, events)
            except Exception:
                log.exception("relay: could not commit a batch of %d events", len(events))
                # One bad event must not cost the others their place: try each alone.
                results = await self._run(self._writer, self._write_each, events)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def _write_batch(self, events: list[Event]) -> list[SaveResult]:
        conn = self._wconn
        assert conn is not None
        return _in_transaction(conn, lambda: [self._write_one(conn, e) for e in events])

    def _write_each(self, events: list[Event]) -> list[SaveResult]:
        conn = self._wconn
        assert conn is not None
        results = []
        for event in events:
            try:
                write = functools.partial(self._write_one, conn, event)
                results.append(_in_transaction(conn, write))
            except Exception:
                log.exception("relay: could not save event %s", event.id)
                results.append(_FAILED)
        return results

    def _write_one(self, conn: sqlite3.Connection, event: Event) -> SaveResult:
        d_tag = event.d_tag
        if d_tag is None:
            known, deleted = conn.execute(_CHECK, (event.id, event.pubkey)).fetchone()
            until = old_seq = None
        else:
            known, deleted, until, old_seq, old_created_at, old_id = conn.execute(
                _CHECK_ADDRESS, (event.id, event.pubkey, event.kind, d_tag)).fetchone()
        if known:
            return _DUPLICATE
        if deleted or (until is not None and event.created_at <= until):
            return _DELETED
        if old_seq is not None:
            # NIP-01: the newer one stays; on equal created_at, the lowest id.
            if old_created_at > event.created_at or (old_created_at == event.created_at
                                                     and old_id < event.id):
                return _REPLACED
            _replace(conn, old_seq, event)
            return _STORED
        seq = conn.execute(
            "INSERT INTO events (id, pubkey, created_at, kind, d_tag, expires_at, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.pubkey, event.created_at, event.kind, d_tag, event.expiration,
             event.raw)).lastrowid
        conn.executemany("INSERT INTO tags (event_seq, name, value) VALUES (?, ?, ?)",
                         [(seq, name, value) for name, value in _tag_rows(event)])
        if event.kind == DELETION_KIND:
            _apply_deletion(conn, event)
        return _STORED

    async def query(self, filters: list[Filter], readers: frozenset[str], *,
                    max_events: int | None = None,
                    max_seconds: float | None = None) -> list[tuple[str, str]]:
        """Stored events as (id, raw JSON) matching any filter, newest first, each filter's limit
        applied and at most `max_events` in all; protected kinds only when `readers` may see
        them. Raises QueryTooSlow when the query runs longer than `max_seconds`."""
        live = [f for f in filters if not f.matches_nothing and f.limit]
        if not live or self._rconn is None:
            return []
        return await self._run(self._reader, self._query_sync, live, readers, int(time.time()),
                               max_events, max_seconds)

    def _query_sync(self, filters: list[Filter], readers: frozenset[str], now: int,
                    max_events: int | None, max_seconds: float | None) -> list[tuple[str, str]]:
        conn = self._rconn
        assert conn is not None
        found: dict[str, tuple[int, str, str]] = {}

        def read() -> None:
            for f in filters:
                sql, params = select_sql(f, readers, now)
                for created_at, event_id, raw in conn.execute(sql, params):
                    found[event_id] = (created_at, event_id, raw)
                    if max_events is not None and len(found) >= max_events:
                        return

        # One read transaction: every filter sees the same snapshot.
        conn.execute("BEGIN")
        try:
            _within(conn, max_seconds, read)
        finally:
            conn.execute("COMMIT")
        rows = sorted(found.values(), key=lambda r: (-r[0], r[1]))
        return [(event_id, raw) for _, event_id, raw in rows]

    async def count(self, filters: list[Filter], readers: frozenset[str], *,
                    max_seconds: float | None = None) -> int:
        """NIP-45 count of stored events matching any filter; QueryTooSlow past `max_seconds`."""
        live = [f for f in filters if not f.matches_nothing]
        if not live or self._rconn is None:
            return 0
        sql, params = count_sql(live, readers, int(time.time()))
        conn = self._rconn
        return await self._run(self._reader, lambda: _within(
            conn, max_seconds, lambda: int(conn.execute(sql, params).fetchone()[0])))

    async def purge_expired(self) -> int:
        """NIP-40: delete events whose expiration has passed; returns how many."""
        if self._wconn is None:
            return 0
        conn = self._wconn
        now = int(time.time())

        def purge() -> int:
            return _in_transaction(conn, lambda: conn.execute(
                "DELETE FROM events WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (now,)).rowcount)

        return await self._run(self._writer, purge)


class QueryTooSlow(Exception):
    """A query ran past its time and was stopped."""


# SQLite virtual machine steps between two looks at the clock (a few microseconds of work).
_PROGRESS_STEPS = 1000


def _within(conn: sqlite3.Connection, max_seconds: float | None, work: Callable[[], T]) -> T:
    """Run `work` on `conn`, interrupted (QueryTooSlow) once it takes longer than `max_seconds`."""
    if max_seconds is None:
        return work()
    deadline = time.monotonic() + max_seconds
    conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
    try:
        return work()
    except sqlite3.OperationalError:
        if time.monotonic() > deadline:
            raise QueryTooSlow from None
        raise
    finally:
        conn.set_progress_handler(None, 0)


def _in_transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def _tag_rows(event: Event) -> set[tuple[str, str]]:
    """The (name, value) rows of `event`'s indexed tags."""
    return {(name, value) for name, values in event.tag_index.items() for value in values}


def _replace(conn: sqlite3.Connection, seq: int, event: Event) -> None:
    """Put `event` in the row `seq` of the version it replaces (same address), changing only
    the tag rows that differ: a status refreshed keeps its `d` and `g` rows. Deleting the old
    row and inserting a new one touched every index twice and cost twice as much (measured)."""
    had = set(conn.execute("SELECT name, value FROM tags WHERE event_seq = ?", (seq,)))
    conn.execute("UPDATE events SET id = ?, created_at = ?, expires_at = ?, raw = ? WHERE seq = ?",
                 (event.id, event.created_at, event.expiration, event.raw, seq))
    rows = _tag_rows(event)
    if gone := had - rows:
        conn.executemany("DELETE FROM tags WHERE name = ? AND value = ? AND event_seq = ?",
                         [(name, value, seq) for name, value in gone])
    if new := rows - had:
        conn.executemany("INSERT INTO tags (event_seq, name, value) VALUES (?, ?, ?)",
                         [(seq, name, value) for name, value in new])


def _apply_deletion(conn: sqlite3.Connection, deletion: Event) -> None:
    """NIP-09: delete the author's own events named by `e` and `a` tags (never other kind-5s),
    and remember them so they cannot be published again."""
    for target in deletion.values("e"):
        if not _HEX64.fullmatch(target):
            continue
        conn.execute("INSERT OR IGNORE INTO deleted_ids (id, pubkey) VALUES (?, ?)",
                     (target, deletion.pubkey))
        conn.execute("DELETE FROM events WHERE id = ? AND pubkey = ? AND kind != ?",
                     (target, deletion.pubkey, DELETION_KIND))
    for address in deletion.values("a"):
        parts = address.split(":", 2)
        if len(parts) != 3 or parts[1] != deletion.pubkey or not _KIND.fullmatch(parts[0]):
            continue
        key = (deletion.pubkey, int(parts[0]), parts[2])
        conn.execute("INSERT INTO deleted_addresses (pubkey, kind, d_tag, until) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT DO UPDATE SET until = max(until, excluded.until)",
                     (*key, deletion.created_at))
        conn.execute("DELETE FROM events WHERE pubkey = ? AND kind = ? AND d_tag = ? AND "
                     "created_at <= ?", (*key, deletion.created_at))
