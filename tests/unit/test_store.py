from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from strom.errors import UserError
from strom.sessions.repository import STRANDED_SQL
from strom.store import db as db_module
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from tests.polling import eventually


async def test_wal_foreign_keys_and_migrations(db: Database) -> None:
    assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
    assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
    assert await db.schema_version >= 1


async def test_migrations_are_applied_once(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    first = await Database.open(path)
    version = await first.schema_version
    await first.close()
    again = await Database.open(path)
    assert await again.schema_version == version
    await again.close()


async def test_transaction_rolls_back_on_error(db: Database) -> None:
    repo = ChargePointRepository(db)
    await repo.add("a", name="A", lat=1, lon=2)
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute("UPDATE charge_points SET name = 'changed' WHERE id = 'a'")
            raise RuntimeError("boom")
    cp = await repo.get("a")
    assert cp is not None and cp.name == "A"


async def test_charge_point_lifecycle(db: Database) -> None:
    repo = ChargePointRepository(db)
    cp = await repo.add("cp-1", name="One", lat=52.5, lon=13.4, num_connectors=2)
    assert [c.connector_id for c in cp.connectors] == [0, 1, 2]
    assert cp.status == "Offline"
    with pytest.raises(UserError, match="already exists"):
        await repo.add("cp-1", name="Again", lat=0, lon=0)
    await repo.set_connected("cp-1", True)
    await repo.set_connector_status("cp-1", 1, "Charging")
    await repo.set_connector_status("cp-1", 2, "Available")
    cp = await repo.get("cp-1")
    assert cp is not None and cp.status == "Available"
    await repo.set_connector_status("cp-1", 2, "Faulted", "GroundFailure")
    cp = await repo.get("cp-1")
    assert cp is not None and cp.status == "Charging"
    assert cp.connector(2).error_code == "GroundFailure"  # type: ignore[union-attr]
    assert await repo.remove("cp-1")
    assert await repo.get("cp-1") is None
    assert await db.fetchall("SELECT * FROM connectors") == []


async def test_concurrent_transactions_are_serialized(db: Database) -> None:
    await db.execute("CREATE TABLE counter (n INTEGER)")
    await db.execute("INSERT INTO counter VALUES (0)")

    async def bump() -> None:
        async with db.transaction() as conn:
            row = await (await conn.execute("SELECT n FROM counter")).fetchone()
            await asyncio.sleep(0)
            await conn.execute("UPDATE counter SET n = ?", (row[0] + 1,))

    await asyncio.gather(*(bump() for _ in range(50)))
    assert (await db.fetchone("SELECT n FROM counter"))[0] == 50


def counted_batches(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The transactions the store's queued writes commit from now on: for each, the number of
    rows of each statement (one executemany each; the whole batch one hop to its thread)."""
    batches: list[list[int]] = []
    real = db_module._write_batch

    def counting(conn: Any, batch: list[tuple[str, list[Any]]]) -> None:
        batches.append([len(rows) for _, rows in batch])
        real(conn, batch)

    monkeypatch.setattr(db_module, "_write_batch", counting)
    return batches


async def test_queued_writes_commit_together_and_before_close(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = await Database.open(tmp_path / "batch.sqlite3")
    await db.execute("CREATE TABLE t (n INTEGER)")
    batches = counted_batches(monkeypatch)
    for n in range(100):
        db.write_soon("INSERT INTO t (n) VALUES (?)", [(n,)])
    await db.flushed()
    assert batches == [[100]]
    assert (await db.fetchone("SELECT COUNT(*), SUM(n) FROM t"))[:] == (100, 4950)
    db.write_soon("INSERT INTO t (n) VALUES (?)", [(1000,)])
    await db.close()  # flushes what is queued
    reopened = await Database.open(tmp_path / "batch.sqlite3")
    assert (await reopened.fetchone("SELECT COUNT(*) FROM t"))[0] == 101
    await reopened.close()


async def test_writes_queued_within_the_batch_time_commit_as_one_statement(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chargers' readings arriving one by one (not in one loop pass) still share a commit, and
    a statement queued many times runs once with all its rows."""
    monkeypatch.setattr(db_module, "BATCH_SECONDS", 0.5)
    await db.execute("CREATE TABLE t (n INTEGER)")
    batches = counted_batches(monkeypatch)
    for n in range(20):
        db.write_soon("INSERT INTO t (n) VALUES (?)", [(n,)])
        await asyncio.sleep(0.002)
    assert (await db.fetchone("SELECT COUNT(*) FROM t"))[0] == 0  # still gathering
    await eventually(lambda: db.fetchone("SELECT COUNT(*) FROM t"), lambda row: row[0] == 20)
    assert batches == [[20]]


async def test_only_the_newest_last_seen_time_per_charger_is_written(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = ChargePointRepository(db)
    for cp_id in ("a", "b"):
        await repo.add(cp_id, name=cp_id, lat=1, lon=2)
    batches = counted_batches(monkeypatch)
    sql = "UPDATE charge_points SET last_seen = ? WHERE id = ?"
    for n in range(50):
        db.write_latest(sql, "a", (f"2026-11-27T10:00:{n:02d}.000Z", "a"))
    db.write_latest(sql, "b", ("2026-11-27T09:00:00.000Z", "b"))
    await db.flushed()
    assert batches == [[2]]
    assert [(cp.id, cp.last_seen) for cp in await repo.list()] == [
        ("a", "2026-11-27T10:00:49.000Z"), ("b", "2026-11-27T09:00:00.000Z")]


async def test_flushed_commits_what_was_queued_while_others_keep_queueing(db: Database) -> None:
    """Chargers may keep the queue full forever: waiting for what was queued before the call
    ends, at once, not after the batch time and not when the queue is empty."""
    await db.execute("CREATE TABLE t (n INTEGER)")
    for n in range(10):
        db.write_soon("INSERT INTO t (n) VALUES (?)", [(n,)])

    async def charger() -> None:
        while True:
            db.write_soon("INSERT INTO t (n) VALUES (?)", [(-1,)])
            await asyncio.sleep(0)  # a write in every pass of the loop

    chattering = asyncio.create_task(charger())
    try:
        await asyncio.wait_for(db.flushed(), 2.0)
        assert (await db.fetchone("SELECT COUNT(*) FROM t WHERE n >= 0"))[0] == 10
    finally:
        chattering.cancel()


async def test_one_bad_queued_row_costs_only_itself(db: Database, caplog) -> None:  # noqa: ANN001
    """A row the database refuses (NaN binds as NULL) does not roll back other chargers' rows
    queued in the same batch: the batch is written again without it."""
    await db.execute("CREATE TABLE readings (cp TEXT NOT NULL, value REAL NOT NULL)")
    sql = "INSERT INTO readings (cp, value) VALUES (?, ?)"
    for n in range(20):
        db.write_soon(sql, [("other", float(n))])
        if n % 3 == 0:
            db.write_soon(sql, [("bad", float("nan")), ("bad", 1.0)])
    await db.flushed()
    rows = await db.fetchall("SELECT cp, value FROM readings WHERE cp = 'other' ORDER BY value")
    assert [r["value"] for r in rows] == [float(n) for n in range(20)]
    assert (await db.fetchone("SELECT COUNT(*) FROM readings WHERE cp = 'bad'"))[0] == 7
    assert "7 queued row(s) refused" in caplog.text


async def test_awaited_writes_share_a_commit_and_are_in_when_they_return(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """`Database.write`: many writers at once (a boot storm) commit in one transaction, each
    statement's rows in one executemany, and each writer returns after that commit."""
    await db.execute("CREATE TABLE a (n INTEGER)")
    await db.execute("CREATE TABLE b (n INTEGER)")
    batches = counted_batches(monkeypatch)

    async def writer(n: int) -> int:
        await db.write(f"INSERT INTO {'ab'[n % 2]} (n) VALUES (?)", [(n,)])
        # Committed when it returns: another connection (the CLI's) sees it.
        other = await Database.open(db.path)
        try:
            return (await other.fetchone(f"SELECT COUNT(*) FROM {'ab'[n % 2]} WHERE n = ?",
                                         (n,)))[0]
        finally:
            await other.close()

    assert await asyncio.gather(*(writer(n) for n in range(40))) == [1] * 40
    assert batches == [[20, 20]]
    rows = await db.fetchall("SELECT rowid, n FROM a ORDER BY rowid")
    assert [r["n"] for r in rows] == list(range(0, 40, 2))  # in the order queued


async def test_a_chargers_offline_and_online_in_one_batch_stay_in_order(db: Database) -> None:
    """Batched statements run grouped by statement; going offline and coming back are one
    statement, so the last of them wins whatever else is in the batch."""
    repo = ChargePointRepository(db)
    await repo.add("cp-1", name="One", lat=0, lon=0)
    await repo.add("cp-2", name="Two", lat=0, lon=0)
    for last in (True, False):
        await asyncio.gather(repo.set_connected("cp-2", True, "ocpp1.6"),
                             repo.record_boot("cp-1", vendor="V", model="M",
                                              serial_number=None, firmware=None),
                             repo.set_connected("cp-1", not last),
                             repo.set_connector_status("cp-1", 1, "Available"),
                             repo.set_connected("cp-1", last, "ocpp2.0.1"))
        cp = await repo.get("cp-1")
        assert cp is not None and cp.connected is last and cp.ocpp_protocol == "ocpp2.0.1"
        assert cp.vendor == "V" and cp.connector(1).status == "Available"  # type: ignore[union-attr]


async def test_a_refused_awaited_write_is_logged_not_raised(db: Database, caplog) -> None:  # noqa: ANN001
    """Records, not money: a row the database refuses (a connector of a charger the operator
    just removed) is logged; the other chargers' rows of the batch are written."""
    repo = ChargePointRepository(db)
    await repo.add("cp-1", name="One", lat=0, lon=0)
    await asyncio.gather(repo.set_connector_status("gone", 1, "Available"),
                         repo.set_connector_status("cp-1", 1, "Faulted", "GroundFailure"))
    cp = await repo.get("cp-1")
    assert cp is not None and cp.connector(1).status == "Faulted"  # type: ignore[union-attr]
    assert "1 queued row(s) refused" in caplog.text


async def test_one_hop_reads(db: Database) -> None:
    await db.execute("CREATE TABLE t (n INTEGER)")
    assert await db.fetchone("SELECT n FROM t") is None
    assert await db.execute("INSERT INTO t (n) VALUES (7)") == 1  # its rowid
    await db.execute("INSERT INTO t (n) VALUES (8)")
    assert (await db.fetchone("SELECT n FROM t ORDER BY n"))[0] == 7
    assert [r[0] for r in await db.fetchall("SELECT n FROM t ORDER BY n")] == [7, 8]


async def test_the_sessions_reconcile_reads_only_indexes(db: Database) -> None:
    """Asked every few seconds: no scan of every invoice or session ever stored."""
    plan = [row[3] for row in await db.fetchall("EXPLAIN QUERY PLAN " + STRANDED_SQL, ("paid",))]
    reads = [step for step in plan if step.startswith(("SCAN", "SEARCH"))]
    assert len(reads) == 3 and all("USING INDEX" in step for step in reads), plan


async def test_rows_queued_before_an_awaited_write_are_in_when_it_returns(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A boot's event log entry is queued, then its record written and awaited: one batch
    holds both, and both are committed when the write returns."""
    await db.execute("CREATE TABLE a (n INTEGER)")
    await db.execute("CREATE TABLE b (n INTEGER)")
    batches = counted_batches(monkeypatch)
    db.write_soon("INSERT INTO a (n) VALUES (?)", [(1,)])
    await db.write("INSERT INTO b (n) VALUES (?)", [(2,)])
    assert batches == [[1, 1]]
    other = await Database.open(db.path)
    try:
        assert (await other.fetchone("SELECT COUNT(*) FROM a"))[0] == 1
    finally:
        await other.close()
