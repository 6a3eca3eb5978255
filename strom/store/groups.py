"""Group commit: many units of work in one `BEGIN IMMEDIATE … COMMIT`, in one hop.

A unit is an `async def body(conn)` written against the store's usual connection (the
repositories' SQL, unchanged). `Database.run` queues it; the units queued while the store was
busy run together in the store's own thread, one SAVEPOINT each, and commit once. A unit that
raises is rolled back to its savepoint and leaves nothing; the others still commit. Nobody
hears "committed" before the COMMIT: a crash between two units loses the whole group, and
with it only units whose callers have not acted on them yet.

In that thread every statement is a plain sqlite3 call: a body's `await conn.execute(...)`
never suspends, so the coroutine runs to its end in one `send`. A body that awaits anything
else (a network call, a sleep) is a bug: its unit fails and rolls back.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from strom.failpoints import crash_point

# Units per group at most: one group holds the store's lock while it runs.
MAX_GROUP = 200


class GroupLost(sqlite3.OperationalError):
    """The database gave up the whole transaction (disk full, I/O error): no unit committed."""


class Cursor:
    """The part of an aiosqlite cursor the repositories use, over a sqlite3 cursor."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class Connection:
    """The part of an aiosqlite connection the repositories use inside a unit, over the
    store's sqlite3 connection in the store's thread (every call returns at once)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> Cursor:
        return Cursor(self._conn.execute(sql, tuple(parameters)))


Body = Callable[[Any], Coroutine[Any, Any, Any]]


@dataclass(slots=True)
class Unit:
    """One queued unit of work and what became of it."""

    body: Body
    result: Any = None
    error: BaseException | None = None
    done: Any = field(default=None)  # the caller's future (the loop side sets it)


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends to its end; its return value."""
    try:
        coro.send(None)
    except StopIteration as finished:
        return finished.value
    coro.close()
    raise RuntimeError("a store unit awaited something other than the store")


def run_reads(conn: sqlite3.Connection, body: Callable[[], Coroutine[Any, Any, Any]],
              inline: threading.local) -> Any:
    """In the store's thread: `body()`, whose `Database.fetchone`/`fetchall` calls read
    straight from `conn` (no transaction of its own); what it returns or raises."""
    inline.conn = conn
    try:
        return _drive(body())
    finally:
        inline.conn = None


def run_group(conn: sqlite3.Connection, units: list[Unit], inline: threading.local) -> None:
    """In the store's thread: every unit in its savepoint, one COMMIT; each unit's result or
    error recorded on it. Raises (nothing committed) when the transaction itself fails."""
    shim = Connection(conn)
    inline.conn = conn  # Database.fetchone/fetchall called by a body read in this transaction
    conn.execute("BEGIN IMMEDIATE")
    try:
        for n, unit in enumerate(units):
            if n:
                crash_point("between-units")
            conn.execute("SAVEPOINT unit")
            try:
                unit.result = _drive(unit.body(shim))
            except Exception as exc:
                unit.error = exc
                if not conn.in_transaction:
                    raise GroupLost(f"the group's transaction was lost: {exc}") from exc
                conn.execute("ROLLBACK TO unit")
            conn.execute("RELEASE unit")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        inline.conn = None
