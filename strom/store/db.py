"""The SQLite database: WAL, foreign keys, numbered migrations and serialized transactions.

One aiosqlite connection serves the whole process. Writes go through `transaction()`, which
holds an asyncio lock and a `BEGIN IMMEDIATE`, so every state change and its ledger entries
commit together or not at all. Decisions about money read their facts inside the transaction
that acts on them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable, Iterable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from strom.security import create_private_file
from strom.store.groups import MAX_GROUP, Unit, run_group, run_reads

T = TypeVar("T")

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# What one row can do wrong (a constraint it breaks, a value SQLite cannot bind); any other
# error is the database's, not the row's.
_ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
               OverflowError, TypeError, ValueError)
# How long queued writes (`write_soon`) gather before they commit together. Under load a batch
# then holds the rows of many calls (at 1,000 calls/s about 100): one transaction and a few
# hops to aiosqlite's thread for all of them, where one per call cost more CPU than the call.
# A crash loses at most this much of these records; none is money.
BATCH_SECONDS = 0.1


def _migrations() -> list[tuple[int, str, str]]:
    """All bundled migrations as (number, name, sql), in order."""
    found = []
    for entry in resources.files("strom.store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {numbers}")
    return found


class Database:
    """An open strom store. Create with `await Database.open(path)`."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        # Queued writes (`write_soon`), the latest row per key of keyed ones (`write_latest`),
        # the timer that starts the next batch, and how many writes were queued and written.
        self._pending: list[tuple[str, list[tuple[Any, ...]]]] = []
        self._latest: dict[str, dict[Hashable, tuple[Any, ...]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._flusher: asyncio.Task[None] | None = None
        # Resolved when the batch now pending has committed (for `write`); None: none waits.
        self._committed: asyncio.Future[None] | None = None
        self._queued = 0
        self._written = 0
        self._units: list[Unit] = []
        self._grouper: asyncio.Task[None] | None = None
        # Set in the store's thread while a group runs: reads of its units go straight to it.
        self._inline = threading.local()

    @classmethod
    async def open(cls, path: Path) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private_file(path)  # session tokens and withdraw k1s live here
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA synchronous=NORMAL")
        # Other processes (the CLI next to a running server) wait instead of failing.
        await conn.execute("PRAGMA busy_timeout=10000")
        db = cls(conn, path)
        try:
            await db._migrate()
        except BaseException:
            # aiosqlite's thread is not a daemon: left open, it keeps a failed start alive.
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        await self.flushed()
        if self._grouper is not None:
            await self._grouper
        await self._conn.close()

    async def _migrate(self) -> None:
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = await (await self._conn.execute("PRAGMA user_version")).fetchone()
                current = row[0] if row else 0
                for number, name, sql in _migrations():
                    if number <= current:
                        continue
                    log.info("applying migration %s", name)
                    for statement in _split_sql(sql):
                        await self._conn.execute(statement)
                    await self._conn.execute(f"PRAGMA user_version={number}")
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise

    @property
    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Serialize a unit of work: commit when the block ends, roll back when it raises."""
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                await self._conn.execute("COMMIT")

    async def run(self, body: Callable[[aiosqlite.Connection], Coroutine[Any, Any, T]]) -> T:
        """Run `body(conn)` as one unit of work, atomically, and return what it returns once
        it is committed; what it raises, with nothing of it written.

        Units queued while the store is busy commit together (`strom/store/groups.py`): one
        hop to the store's thread and one COMMIT for the group, a savepoint each. `body` may
        await only the store (`conn`, and this database's `fetchone`/`fetchall`), and runs in
        the store's thread: it must not touch the event loop's state.
        """
        unit = Unit(body, done=asyncio.get_running_loop().create_future())
        self._units.append(unit)
        if self._grouper is None or self._grouper.done():
            self._grouper = asyncio.get_running_loop().create_task(self._commit_groups())
        result: T = await unit.done
        return result

    async def read(self, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """`body()` in one hop to the store's thread, for several reads that would take a hop
        each (a repository's `fetchone`/`fetchall` inside it read at once); what it returns
        or raises. As each read alone, it sees the store as it is: no transaction, no lock.
        `body` may await only those reads and runs in the store's thread: it may look at the
        loop's state only by single lookups (atomic under the GIL), never change it."""
        result: T = await self._in_thread(run_reads, body, self._inline)
        return result

    async def _commit_groups(self) -> None:
        while self._units:
            async with self._lock:  # the units that queued while we waited join this group
                units, self._units = self._units[:MAX_GROUP], self._units[MAX_GROUP:]
                try:
                    await self._in_thread(run_group, units, self._inline)
                except BaseException as exc:
                    for unit in units:
                        if not unit.done.done():
                            unit.done.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
            for unit in units:
                if unit.done.done():
                    continue  # its caller was cancelled (the unit committed all the same)
                if unit.error is not None:
                    unit.done.set_exception(unit.error)
                else:
                    unit.done.set_result(unit.result)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(sqlite3_connection, *args)` in the store's thread, in order with every other
        statement: one hop. aiosqlite (0.22) has no public call for this; `_execute` is the
        one its own methods use."""
        raw = self._conn._conn
        result: T = await self._conn._execute(fn, raw, *args)
        return result

    def write_soon(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Queue rows for `sql`; what is queued within `BATCH_SECONDS` commits together.

        For records that are not money and whose loss in a crash costs nothing (meter values,
        last-seen times): one transaction for many chargers instead of one each.
        """
        self._pending.append((sql, [tuple(r) for r in rows]))
        self._queue_one()

    def write_latest(self, sql: str, key: Hashable, row: Iterable[Any]) -> None:
        """Queue one row for `sql` that replaces a row queued for the same `key` and not yet
        written (a last-seen time: only the newest one per charger is worth a write)."""
        self._latest.setdefault(sql, {})[key] = tuple(row)
        self._queue_one()

    def _queue_one(self) -> None:
        self._queued += 1
        if self._timer is None and (self._flusher is None or self._flusher.done()):
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(BATCH_SECONDS, self._start_flush)

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def write(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """`write_soon`, returning once its batch has committed: for records subscribers may
        read right after (a charger's boot, its connectors' status, the event log), written
        together when many chargers write at once. A failure is logged, as `write_soon`'s.
        What was queued before it (`write_soon`, with no await between) is committed too when
        it returns."""
        self.write_soon(sql, rows)
        if self._committed is None:
            self._committed = asyncio.get_running_loop().create_future()
        if self._flusher is None or self._flusher.done():
            self._start_flush()  # now, not after the batch time: a writer waits
        # Shielded: a writer cancelled while it waits does not cancel the others' wait.
        await asyncio.shield(self._committed)

    async def _flush(self) -> None:
        """Commit the batches: everything queued until then, one transaction each; at once
        again while a writer waits (`write`), else after `BATCH_SECONDS`."""
        while True:
            await asyncio.sleep(0)  # let this loop pass queue what it has
            latest = [(sql, list(rows.values())) for sql, rows in self._latest.items()]
            batch = _grouped(self._pending + latest)
            self._pending, self._latest = [], {}
            committed, self._committed = self._committed, None
            queued = self._queued
            try:
                async with self._lock:  # BEGIN, every statement and COMMIT: one hop
                    await self._in_thread(_write_batch, batch)
            except _ROW_ERRORS:
                await self._write_each(batch)
            except Exception:
                log.exception("store: a batch of %d queued rows failed",
                              sum(len(rows) for _, rows in batch))
            finally:
                self._written = queued
                if committed is not None:
                    committed.set_result(None)
            if not (self._pending or self._latest):
                return
            if self._committed is None:  # queued while this batch was written, none waits
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(BATCH_SECONDS, self._start_flush)
                return

    async def _write_each(self, batch: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """Write a failed batch row by row: one bad row (one charger's) costs only itself.

        A failing statement only undoes itself in SQLite, so one transaction still holds them.
        """
        lost, first = 0, ""
        try:
            async with self.transaction() as conn:
                for sql, rows in batch:
                    for row in rows:
                        try:
                            await conn.execute(sql, row)
                        except _ROW_ERRORS as exc:
                            lost += 1
                            first = first or f"{exc}: {row!r}"[:300]
        except Exception:
            log.exception("store: a batch of %d queued rows failed",
                          sum(len(rows) for _, rows in batch))
            return
        log.error("store: %d queued row(s) refused by the database and dropped, the rest"
                  " written; first: %s", lost, first)

    async def flushed(self) -> None:
        """Commit what is queued now, without waiting for its batch's time (not what others
        queue meanwhile: chargers may keep the queue full forever)."""
        target = self._queued
        while self._written < target:
            if self._flusher is None or self._flusher.done():
                self._start_flush()
            assert self._flusher is not None
            # Shielded: a waiter that is cancelled must not cut the batch's transaction.
            await asyncio.shield(self._flusher)

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """One write statement in its own transaction; returns lastrowid.

        Outside `BEGIN` SQLite commits a lone statement by itself, taking the write lock when
        the statement starts (so `busy_timeout` applies as under `BEGIN IMMEDIATE`): one hop
        to aiosqlite's thread instead of three. The lock keeps it out of others' transactions.
        """
        async with self._lock:
            cursor = await self._conn.execute(sql, tuple(params))
            return cursor.lastrowid or 0

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """The first row of a query that has at most a few (by key, LIMIT 1, an aggregate):
        fetched with its rest in one hop to aiosqlite's thread (a cursor takes three). Inside
        a unit of `run`: read in its transaction, in the store's thread."""
        inline = getattr(self._inline, "conn", None)
        if inline is not None:
            return _fetchone(inline, sql, tuple(params))
        rows = await self._conn.execute_fetchall(sql, tuple(params))
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """All rows, in one hop to aiosqlite's thread (inside a unit of `run`: read in its
        transaction)."""
        inline = getattr(self._inline, "conn", None)
        if inline is not None:
            return _fetchall(inline, sql, tuple(params))
        return list(await self._conn.execute_fetchall(sql, tuple(params)))


def _grouped(batch: list[tuple[str, list[tuple[Any, ...]]]]
             ) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """A batch with the rows of each statement together (one executemany, one hop to the
    aiosqlite thread, each): a statement's rows keep their order, statements come in the order
    each was first queued. The rows are records of distinct facts, so nothing depends on the
    order across statements."""
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for sql, rows in batch:
        grouped.setdefault(sql, []).extend(rows)
    return list(grouped.items())


def _write_batch(conn: sqlite3.Connection, batch: list[tuple[str, list[tuple[Any, ...]]]]
                 ) -> None:
    """One transaction of queued rows, in the store's thread; rolled back when one fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in batch:
            conn.executemany(sql, rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _fetchone(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def _fetchall(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    cursor = conn.execute(sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _split_sql(sql: str) -> list[str]:
    """Statements of a migration file, split on `;` at line ends (no triggers with bodies)."""
    statements, current = [], []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line)
        if stripped.endswith(";"):
            statements.append("\n".join(current))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements
