"""Group commit (`Database.run`, strom/store/groups.py): units queued together commit in one
transaction, each atomic on its own; a failing unit leaves nothing and costs the others
nothing; nobody hears "committed" before the COMMIT, so a crash in a group loses only units
whose callers never acted on them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiosqlite
import pytest

from strom.store.db import Database


class Broken(Exception):
    pass


async def _table(db: Database) -> None:
    await db.execute("CREATE TABLE facts (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")


def _writer(key: str, fail: bool = False):
    async def body(conn: aiosqlite.Connection) -> str:
        await conn.execute("INSERT INTO facts (k, v) VALUES (?, 1)", (key,))
        await conn.execute("INSERT INTO facts (k, v) VALUES (?, 2)", (key + "-second",))
        if fail:
            raise Broken(key)
        return key
    return body


async def _keys(db: Database) -> set[str]:
    return {r[0] for r in await db.fetchall("SELECT k FROM facts")}


async def test_concurrent_units_share_one_transaction_and_a_failing_one_leaves_nothing(
        db: Database) -> None:
    await _table(db)
    groups: list[int] = []
    real = db._in_thread

    async def counted(fn, *args):
        groups.append(len(args[0]))
        return await real(fn, *args)

    db._in_thread = counted
    results = await asyncio.gather(
        *(db.run(_writer(f"u{n}", fail=n == 7)) for n in range(20)), return_exceptions=True)
    assert groups == [20]  # one hop, one BEGIN … COMMIT for all twenty
    assert [r for r in results if isinstance(r, Exception)] == [results[7]]
    assert isinstance(results[7], Broken)
    expected = {f"u{n}" for n in range(20) if n != 7}
    assert await _keys(db) == expected | {k + "-second" for k in expected}


async def test_a_unit_reads_its_own_writes_and_the_database_readers_join_it(
        db: Database) -> None:
    await _table(db)
    await db.execute("INSERT INTO facts (k, v) VALUES ('seen', 5)")

    async def body(conn: aiosqlite.Connection) -> tuple[int, int]:
        await conn.execute("UPDATE facts SET v = v + 1 WHERE k = 'seen'")
        cursor = await conn.execute("SELECT v FROM facts WHERE k = 'seen'")
        mine = (await cursor.fetchone())[0]
        # A repository's own read (Database.fetchone) inside the unit sees the same state.
        row = await db.fetchone("SELECT v FROM facts WHERE k = 'seen'")
        return mine, row[0]

    assert await db.run(body) == (6, 6)
    assert (await db.fetchone("SELECT v FROM facts WHERE k = 'seen'"))[0] == 6


async def test_a_unit_that_awaits_anything_but_the_store_fails_and_leaves_nothing(
        db: Database) -> None:
    await _table(db)

    async def body(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT INTO facts (k, v) VALUES ('early', 1)")
        await asyncio.sleep(0)  # would run the loop from the store's thread

    with pytest.raises(RuntimeError, match="awaited something other than the store"):
        await db.run(body)
    assert await _keys(db) == set()
    assert await db.run(_writer("after")) == "after"  # the store is usable again


async def test_reads_together_take_one_hop_and_answer_as_each_alone(db: Database) -> None:
    await _table(db)
    await db.run(_writer("a"))
    hops: list[object] = []
    real = db._in_thread

    async def counted(fn, *args):
        hops.append(fn)
        return await real(fn, *args)

    async def both() -> tuple[int, set[str]]:
        row = await db.fetchone("SELECT v FROM facts WHERE k = 'a'")
        assert row is not None
        return row[0], await _keys(db)

    db._in_thread = counted
    assert await db.read(both) == (1, {"a", "a-second"})
    assert len(hops) == 1

    async def missing() -> None:
        if await db.fetchone("SELECT v FROM facts WHERE k = 'none'") is None:
            raise LookupError("none")

    with pytest.raises(LookupError):  # what the body raises reaches the caller
        await db.read(missing)

    async def waits() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other than the store"):
        await db.read(waits)
    assert await db.fetchall("SELECT k FROM facts WHERE k = 'a'")  # reads still go to it


async def test_units_and_plain_transactions_serialize(db: Database) -> None:
    await _table(db)

    async def plain(n: int) -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO facts (k, v) VALUES (?, 0)", (f"t{n}",))
            await asyncio.sleep(0)  # a plain transaction may wait; units queue meanwhile

    await asyncio.gather(*(plain(n) for n in range(5)),
                         *(db.run(_writer(f"u{n}")) for n in range(5)))
    assert len(await _keys(db)) == 15


async def test_a_unit_commits_before_its_caller_hears_of_it(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = await Database.open(path)
    await _table(db)
    async def check(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT INTO facts (k, v) VALUES ('x', 1)")

    await db.run(check)
    # Another connection (another process: the CLI) sees it: it was committed.
    async with aiosqlite.connect(path) as other:
        seen = {r[0] for r in await other.execute_fetchall("SELECT k FROM facts")}
    await db.close()
    assert seen == {"x"}


CRASHING = """
import asyncio, sys
from pathlib import Path
from strom.store.db import Database

async def main(path):
    db = await Database.open(Path(path))
    async def first(conn):
        await conn.execute("INSERT INTO facts (k, v) VALUES ('before', 1)")
    await db.run(first)
    print("committed before", flush=True)
    def unit(n):
        async def body(conn):
            await conn.execute("INSERT INTO facts (k, v) VALUES (?, 1)", (f"g{n}",))
        return body
    # Ten units queue while the store is busy, so they run as one group; the process is
    # killed between two of them (STROM_FAILPOINT=between-units).
    async with db.transaction():
        tasks = [asyncio.ensure_future(db.run(unit(n))) for n in range(10)]
        await asyncio.sleep(0)
    for task in asyncio.as_completed(tasks):
        await task
        print("committed a group unit", flush=True)

asyncio.run(main(sys.argv[1]))
"""


async def test_a_crash_between_units_loses_the_group_and_nothing_acknowledged(
        tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = await Database.open(path)
    await _table(db)
    await db.close()
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", CRASHING, str(path)], capture_output=True,
        text=True, timeout=60, env={**os.environ, "STROM_FAILPOINT": "between-units"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.splitlines() == ["committed before"]  # no group unit acknowledged
    db = await Database.open(path)
    try:
        # The unit committed before survives; the group's units, never acknowledged, are
        # gone together, none half-written.
        assert await _keys(db) == {"before"}
    finally:
        await db.close()
