"""The session state machine: payment, start, metering, stop, watchdog, recovery; real SQLite,
doubles at the OCPP and wallet edges (tests/unit/sessions_support.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from strom.events import InvoicePaid, MeterSample, TransactionStarted
from strom.sessions.audit import check_ledger
from strom.sessions.model import State
from strom.store.db import Database
from strom.store.lightning import LightningRepository
from strom.store.transactions import TransactionRepository
from strom.timeutil import iso, utcnow
from tests.polling import eventually
from tests.unit.sessions_support import TARIFF, Harness, harness


async def test_paid_twice_is_recorded_once_and_starts_once(h: Harness) -> None:
    cp = await h.cps.get("cp-1")
    assert cp is not None
    pending = await h.sessions.create_pending(cp, None, TARIFF, 500_000, description_hash=b"\0" * 32)
    await asyncio.gather(*(h.sessions.on_paid(pending.payment_hash, 500_000) for _ in range(5)))
    await h.wait_state(pending.session.id, State.STARTING)
    session = await h.sessions.repo.get(pending.session.id)
    assert session is not None and session.paid_msat == 500_000
    assert len(h.chargers.starts) == 1
    assert h.chargers.starts[0][2] == session.id_tag
    assert (await check_ledger(h.db)).ok


async def test_authorize_only_the_sessions_own_tag(h: Harness) -> None:
    sid = await h.paid_session()
    await h.wait_state(sid, State.STARTING)
    session = await h.sessions.repo.get(sid)
    assert session is not None
    assert await h.sessions.authorize("cp-1", 1, session.id_tag) == "Accepted"
    assert await h.sessions.authorize("cp-2", 1, session.id_tag) == "Invalid"
    assert await h.sessions.authorize("cp-1", 1, "stranger-rfid") == "Invalid"


async def test_metering_stops_at_budget_and_never_exceeds_paid(h: Harness) -> None:
    sid = await h.charging_session(amount=1_000_000)  # 10 sat fee + 330 Wh at 300 sat/kWh
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.transaction_id is not None
    tx = session.transaction_id
    await h.sessions.on_meter(MeterSample("cp-1", 1, tx, utcnow(), energy_wh=1100.0, power_w=7000))
    session = await h.sessions.repo.get(sid)
    assert session is not None
    assert session.consumed_msat == 10_000 + 30_000
    assert session.state == State.CHARGING
    await h.sessions.on_meter(MeterSample("cp-1", 1, tx, utcnow(), energy_wh=5000.0))
    await h.wait_state(sid, State.STOPPING)
    session = await h.sessions.repo.get(sid)
    assert session is not None
    assert session.consumed_msat == session.paid_msat == 1_000_000
    assert h.chargers.stops == [("cp-1", tx)]
    await h.sessions.on_transaction_stopped("cp-1", tx, 5100.0, "Remote")
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.state == State.SETTLED
    assert session.refundable_msat == 0
    assert (await check_ledger(h.db)).ok


async def test_meter_going_backwards_refunds_nothing(h: Harness) -> None:
    sid = await h.charging_session()
    session = await h.sessions.repo.get(sid)
    assert session is not None
    await h.sessions.on_meter(MeterSample("cp-1", 1, session.transaction_id, utcnow(), energy_wh=1500))
    await h.sessions.on_meter(MeterSample("cp-1", 1, session.transaction_id, utcnow(), energy_wh=1200))
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.energy_wh == 500


async def test_two_payers_race_for_one_connector(h: Harness) -> None:
    first, second = await asyncio.gather(h.paid_session(connector=1), h.paid_session(connector=1))
    await h.wait_state(first, State.STARTING, State.FAILED)
    await h.wait_state(second, State.STARTING, State.FAILED)
    states = sorted([(await h.sessions.repo.get(s)).state for s in (first, second)])  # type: ignore[union-attr]
    assert states == [State.FAILED, State.STARTING]
    failed = next(s for s in [await h.sessions.repo.get(x) for x in (first, second)]
                  if s and s.state == State.FAILED)
    assert failed is not None and failed.refundable_msat == failed.paid_msat
    assert "charging for another driver" in (failed.failure_reason or "")
    assert len(h.chargers.starts) == 1


async def test_start_timeout_fails_and_refunds_all(h: Harness) -> None:
    sid = await h.paid_session()
    await h.wait_state(sid, State.FAILED)
    session = await h.sessions.repo.get(sid)
    assert session is not None
    assert session.failure_reason == "charger did not start in time"
    assert session.refundable_msat == 1_000_000
    assert await h.sessions.authorize("cp-1", 1, session.id_tag) == "Invalid"


async def test_rejected_start_and_offline_charger_fail(h: Harness) -> None:
    h.chargers.accept_start = False
    sid = await h.paid_session()
    await h.wait_state(sid, State.FAILED)
    assert (await h.sessions.repo.get(sid)).failure_reason == "charger rejected the start"  # type: ignore[union-attr]
    h.chargers.connected = False
    sid = await h.paid_session()
    await h.wait_state(sid, State.FAILED)
    assert "offline" in (await h.sessions.repo.get(sid)).failure_reason  # type: ignore[union-attr, operator]


async def test_topup_adds_budget(h: Harness) -> None:
    sid = await h.charging_session(amount=1_000_000)
    session = await h.sessions.repo.get(sid)
    assert session is not None
    topup = await h.sessions.create_topup(session, 2_000_000, description_hash=b"\1" * 32)
    await h.sessions.on_paid(topup.payment_hash, 2_000_000)
    session = await h.sessions.repo.get(sid)
    assert session is not None
    assert session.paid_msat == 3_000_000 and session.state == State.CHARGING
    assert (await check_ledger(h.db)).ok


async def test_silent_charger_holds_the_worst_case_until_its_final_reading(h: Harness) -> None:
    sid = await h.charging_session()
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.transaction_id is not None
    await h.sessions.on_meter(MeterSample("cp-1", 1, session.transaction_id, utcnow(), energy_wh=2000))
    session = await h.sessions.stop_and_wait(sid, "stopped by the driver")
    assert session.state == State.STOPPING_UNCONFIRMED
    assert session.consumed_msat == 10_000 + 300_000
    # 22 kW for the seconds since the last reading and the next 30 s: ~56 sat held back.
    assert 50_000 < session.held_msat < 70_000
    assert session.refundable_msat == 1_000_000 - 310_000 - session.held_msat
    # The charger comes back with its StopTransaction: 500 Wh more, billed; the rest is free.
    await h.sessions.on_transaction_stopped("cp-1", session.transaction_id, 2500.0, "Remote")
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.state == State.STOPPED
    assert session.held_msat == 0 and session.consumed_msat == 10_000 + 450_000
    assert session.refundable_msat == 1_000_000 - 460_000
    assert (await check_ledger(h.db)).ok


async def test_budget_stop_leaves_room_for_max_power_until_the_next_reading(db: Database) -> None:
    """Small readings (30 sat each) near the budget: the stop comes while one more interval
    at the connector's maximum (720 kW for the 1 s an interval counts at least: 200 Wh,
    60 sat) still fits, not when only the last interval's 30 sat would."""
    async with harness(db, max_power_w=720_000.0) as h:
        sid = await h.charging_session(amount=1_000_000)  # 10 sat fee, then 300 sat/kWh
        session = await h.sessions.repo.get(sid)
        assert session is not None
        states = {}
        for wh in range(100, 3200, 100):
            await h.sessions.on_meter(MeterSample("cp-1", 1, session.transaction_id, utcnow(),
                                                  energy_wh=1000.0 + wh))
            states[wh] = (await h.sessions.repo.get(sid)).state  # type: ignore[union-attr]
        assert states[2900] == State.CHARGING
        assert states[3100] == State.STOPPING  # 940 sat used + 60 sat worst case = budget


async def test_watchdog_asks_for_a_reading_then_stops_and_says_why(db: Database) -> None:
    async with harness(db, meter_interval=0.2, watchdog_intervals=2) as h:
        sid = await h.charging_session()
        session = await h.sessions.repo.get(sid)
        assert session is not None and session.transaction_id is not None
        await h.sessions.on_meter(MeterSample("cp-1", 1, session.transaction_id, utcnow(),
                                              energy_wh=1500))
        await h.sessions.tick_once()
        assert h.chargers.triggers == []  # a fresh reading: nothing to ask
        await asyncio.sleep(0.45)  # two intervals without a reading
        await h.sessions.tick_once()
        assert h.chargers.triggers == [("cp-1", 1)]
        assert (await h.sessions.repo.get(sid)).state == State.CHARGING  # type: ignore[union-attr]
        await asyncio.sleep(0.25)  # still nothing one interval later
        await h.sessions.tick_once()
        await h.wait_state(sid, State.STOPPING, State.STOPPING_UNCONFIRMED)
        session = await h.sessions.repo.get(sid)
        assert session is not None
        assert session.stop_reason == "stopped: the charger sent no meter readings"
        assert ("cp-1", session.transaction_id) in h.chargers.stops


async def test_watchdog_is_satisfied_by_the_triggered_reading(db: Database) -> None:
    async with harness(db, meter_interval=0.2, watchdog_intervals=2) as h:
        sid = await h.charging_session()
        session = await h.sessions.repo.get(sid)
        assert session is not None
        await asyncio.sleep(0.45)
        await h.sessions.tick_once()
        assert len(h.chargers.triggers) == 1
        await h.sessions.on_meter(MeterSample("cp-1", 1, session.transaction_id, utcnow(),
                                              energy_wh=1200))
        await asyncio.sleep(0.25)
        await h.sessions.tick_once()
        assert (await h.sessions.repo.get(sid)).state == State.CHARGING  # type: ignore[union-attr]


async def test_unconfirmed_stop_is_asked_again_after_a_restart(db: Database) -> None:
    async with harness(db) as h:
        sid = await h.charging_session()
        h.chargers.accept_stop = False
        await h.sessions.request_stop(sid, "stopped by the driver")
        await h.wait_state(sid, State.STOPPING_UNCONFIRMED)
        session = await h.sessions.repo.get(sid)
        assert session is not None and session.held_msat > 0
    async with harness(db) as again:  # a new process over the same store
        await eventually(lambda: _value(again.chargers.stops),
                         lambda stops: ("cp-1", session.transaction_id) in stops)
        await again.sessions.on_transaction_stopped("cp-1", session.transaction_id or 0,
                                                    1500.0, "Remote")
        done = await again.sessions.repo.get(sid)
        assert done is not None and done.state == State.STOPPED and done.held_msat == 0
        assert (await check_ledger(db)).ok


async def test_an_extra_transaction_is_asked_to_stop_again_after_a_restart(
        db: Database) -> None:
    """Another transaction with a charging session's idTag: recorded, RemoteStop until the
    charger stops it (also from a new process), its energy unbilled, the session untouched."""
    transactions = TransactionRepository(db)
    async with harness(db) as h:
        sid = await h.charging_session()
        before = await h.sessions.repo.get(sid)
        assert before is not None
        h.chargers.accept_stop = False
        extra, _ = await transactions.start("cp-1", connector_id=2, id_tag=before.id_tag,
                                            meter_start_wh=7000.0, started_at=iso(),
                                            auth_status="Accepted")
        await h.sessions.on_transaction_started(TransactionStarted(
            "cp-1", 2, extra.id, before.id_tag, 7000.0, utcnow()))
        await eventually(lambda: _value(h.chargers.stops),
                         lambda stops: ("cp-1", extra.id) in stops)
    async with harness(db) as again:  # a new process over the same store
        await eventually(lambda: _value(again.chargers.stops),
                         lambda stops: ("cp-1", extra.id) in stops)
        await transactions.stop("cp-1", extra.id, meter_stop_wh=7400.0, stopped_at=iso(),
                                reason="Remote", id_tag=None)
        await again.sessions.on_transaction_stopped("cp-1", extra.id, 7400.0, "Remote")
        after = await again.sessions.repo.get(sid)
        assert after is not None and after.state == State.CHARGING
        assert (after.consumed_msat, after.energy_wh) == (before.consumed_msat, before.energy_wh)
        report = await check_ledger(db)
        assert report.ok and report.extra_unbilled_wh == 400.0
        assert report.extra_transactions == [{
            "transaction_id": extra.id, "cp_id": "cp-1", "connector_id": 2,
            "session_id": sid, "open": False, "energy_wh": 400.0}]


async def _value(value: object) -> object:
    return value


async def test_watchdog_leaves_an_offline_charger_alone(db: Database) -> None:
    """Its queued readings come with it; stopping it would wait for its return anyway."""
    async with harness(db, meter_interval=0.1, watchdog_intervals=1) as h:
        sid = await h.charging_session()
        h.chargers.connected = False
        for _ in range(3):
            await asyncio.sleep(0.15)
            await h.sessions.tick_once()
        assert h.chargers.triggers == []
        assert (await h.sessions.repo.get(sid)).state == State.CHARGING  # type: ignore[union-attr]


async def test_reconcile_applies_an_invoice_the_wallet_recorded_paid_once(h: Harness) -> None:
    """The wallet's books say paid, the sessions never heard (an `InvoicePaid` lost): the
    reconcile applies it, once, also when the event arrives at the same time."""
    cp = await h.cps.get("cp-1")
    assert cp is not None
    pending = await h.sessions.create_pending(cp, None, TARIFF, 500_000, description_hash=b"\0" * 32)
    books = LightningRepository(h.db)
    await books.add_invoice(payment_hash=pending.payment_hash, backend="dev",
                            bolt11=pending.bolt11, amount_msat=500_000,
                            expires_at=iso(utcnow() + timedelta(minutes=10)))
    assert await books.mark_paid(pending.payment_hash, received_msat=500_000, preimage="00" * 32,
                                 paid_at=iso(), backend="dev") is not None
    await asyncio.gather(h.sessions.reconcile(), h.sessions.on_paid(pending.payment_hash, 500_000),
                         h.sessions.reconcile())
    await h.wait_state(pending.session.id, State.STARTING)
    session = await h.sessions.repo.get(pending.session.id)
    assert session is not None and session.paid_msat == 500_000
    assert len(h.chargers.starts) == 1
    assert (await check_ledger(h.db)).ok
    assert await h.sessions.repo.stranded_payments() == ([], [])


async def test_a_paid_session_whose_start_failed_is_started_within_seconds(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    async with harness(db, reconcile_interval_seconds=0.2) as h:
        begin_start = h.sessions._begin_start
        failed: list[str] = []

        async def failing_once(session_id: str) -> None:
            if not failed:
                failed.append(session_id)
                raise RuntimeError("the start task died")
            await begin_start(session_id)

        monkeypatch.setattr(h.sessions, "_begin_start", failing_once)
        sid = await h.paid_session()
        await h.wait_state(sid, State.STARTING)
        assert failed == [sid] and len(h.chargers.starts) == 1


async def test_payments_arriving_together_are_recorded_together_each_once(h: Harness) -> None:
    """InvoicePaid events published at once: each payment recorded once, in shared group
    commits (far fewer store transactions than payments), the ledger whole."""
    cp = await h.cps.get("cp-1")
    assert cp is not None
    pending = [await h.sessions.create_pending(cp, None, TARIFF, 100_000 + n,
                                               description_hash=b"\0" * 32) for n in range(12)]
    groups: list[int] = []
    real = h.db._in_thread

    async def counted(fn, *args):
        groups.append(len(args[0]))
        return await real(fn, *args)

    h.db._in_thread = counted  # type: ignore[method-assign]
    for p in pending + pending[:3]:  # three delivered twice
        h.wallet.settle(p.payment_hash)
        h.bus.publish(InvoicePaid(p.payment_hash, 0, "00" * 32, utcnow()))
    for p in pending:
        await h.wait_state(p.session.id, State.STARTING, State.FAILED)
    sessions = [await h.sessions.repo.get(p.session.id) for p in pending]
    assert [s.paid_msat for s in sessions if s] == [100_000 + n for n in range(12)]
    assert sorted(s.state for s in sessions if s).count(State.STARTING) == 2  # two connectors
    assert max(groups) > 1 and len(groups) < 2 * len(pending)
    assert (await check_ledger(h.db)).ok
