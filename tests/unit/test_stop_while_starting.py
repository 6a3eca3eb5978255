"""A stop asked while the session is `starting` (paid, RemoteStart out, no StartTransaction
yet) holds the payment until the charger's answer: its StartTransaction → RemoteStop at once
and the energy it reports billed; a rejection or no start in time → all refundable. No
withdraw is offered meanwhile, and a restart while held continues either way.

Real SQLite and services; the charger is `FakeChargers` plus the service calls its messages
make (the OCPP websocket paths: tests/money/test_unconfirmed_stops.py for 1.6,
tests/money/test_v201_sessions.py for 2.0.1).
"""

from __future__ import annotations

import asyncio

import pytest

from strom.chargers.control import ControlResult, Outcome, StillWanted
from strom.events import TransactionStarted
from strom.sessions.audit import check_ledger
from strom.sessions.model import Session, State
from strom.sessions.payer_stop import PAYER_REASON, PayerStop, SessionToken
from strom.sessions.withdrawals import Withdrawals, WithdrawRefused
from strom.store.db import Database
from strom.timeutil import utcnow
from tests.doubles.edges import make_invoice
from tests.polling import eventually
from tests.unit.sessions_support import Harness, harness

PAID = 1_000_000


async def _get(h: Harness, sid: str) -> Session:
    session = await h.sessions.repo.get(sid)
    assert session is not None
    return session


async def _held(h: Harness, withdrawals: Withdrawals) -> Session:
    """A paid session whose RemoteStart is out, stopped by its payer: held."""
    sid = await h.paid_session(PAID)
    await h.wait_state(sid, State.STARTING)
    token = SessionToken((await _get(h, sid)).token)
    with pytest.raises(WithdrawRefused, match="your stop is being applied"):
        await withdrawals.offer(token)  # the stop link stops, then offers nothing yet
    session = await _get(h, sid)
    assert session.state == State.STARTING and session.stop_requested
    assert session.stop_reason == PAYER_REASON and session.refunded_msat == 0
    return session


def _withdrawals(h: Harness) -> Withdrawals:
    return Withdrawals(sessions=h.sessions, stops=PayerStop(h.sessions), refunds=h.refunds)


async def test_a_start_after_the_stop_is_stopped_at_once_and_billed(db: Database) -> None:
    async with harness(db, start_timeout=30.0) as h:
        withdrawals = _withdrawals(h)
        session = await _held(h, withdrawals)
        assert await h.sessions.authorize("cp-1", 1, session.id_tag) == "Invalid"
        await h.sessions.on_transaction_started(TransactionStarted(
            "cp-1", 1, 77, session.id_tag, 1000.0, utcnow()))
        await eventually(lambda: _value(h.chargers.stops), lambda s: ("cp-1", 77) in s)
        stopping = await _get(h, session.id)
        assert stopping.state in (State.STOPPING, State.STOPPING_UNCONFIRMED)
        assert stopping.transaction_id == 77 and not stopping.stop_requested
        await h.sessions.on_transaction_stopped("cp-1", 77, 1100.0, "Remote")  # 100 Wh
        done = await _get(h, session.id)
        assert done.state == State.STOPPED and done.consumed_msat == 40_000  # 10 fee + 30
        token = SessionToken(done.token)
        offer = await withdrawals.offer(token)
        assert offer.session.refundable_msat == PAID - 40_000
        await withdrawals.claim(token, offer.k1, make_invoice(PAID - 40_000))
        with pytest.raises(WithdrawRefused, match="already paid"):
            await withdrawals.offer(token)
        refunded = await _get(h, session.id)
        assert refunded.state == State.REFUNDED and refunded.refunded_msat == PAID - 40_000
        assert (await check_ledger(db)).ok


async def test_no_start_in_time_fails_with_everything_refundable(db: Database) -> None:
    async with harness(db, start_timeout=1.0) as h:
        withdrawals = _withdrawals(h)
        session = await _held(h, withdrawals)
        await h.wait_state(session.id, State.FAILED)
        offer = await withdrawals.offer(SessionToken(session.token))
        assert offer.session.refundable_msat == PAID
        await withdrawals.claim(SessionToken(session.token), offer.k1, make_invoice(PAID))
        assert (await _get(h, session.id)).state == State.REFUNDED
        assert (await check_ledger(db)).ok


async def test_a_rejected_start_after_the_stop_fails_with_everything_refundable(
        db: Database) -> None:
    async with harness(db, start_timeout=30.0) as h:
        answer: asyncio.Future[ControlResult] = asyncio.get_running_loop().create_future()

        async def slow_start(cp_id: str, connector_id: int, id_tag: str,
                             **_: object) -> ControlResult:
            return await answer  # the charger answers the RemoteStart only after the stop

        h.chargers.start = slow_start  # type: ignore[method-assign]
        session = await _held(h, _withdrawals(h))
        answer.set_result(ControlResult(Outcome.REJECTED, "Rejected"))
        await h.wait_state(session.id, State.FAILED)
        failed = await _get(h, session.id)
        assert failed.failure_reason == "charger rejected the start"
        assert failed.refundable_msat == PAID


async def test_a_remote_start_still_waiting_its_turn_is_withdrawn_by_the_stop(
        db: Database) -> None:
    """The RemoteStart waits behind another call to the charger when the payer stops: asked
    at its turn, the session no longer wants it, nothing goes out and the session fails at
    once (long before the start timeout), all refundable."""
    async with harness(db, start_timeout=30.0) as h:
        turn = asyncio.Event()
        sent: list[str] = []

        async def queued_start(cp_id: str, connector_id: int, id_tag: str, *,
                               still_wanted: StillWanted | None = None) -> ControlResult:
            await turn.wait()  # the call before it is answered
            assert still_wanted is not None
            if not await still_wanted():
                return ControlResult(Outcome.NOT_SENT, reason="not sent")
            sent.append(id_tag)
            return ControlResult(Outcome.ACCEPTED, "Accepted")

        h.chargers.start = queued_start  # type: ignore[method-assign]
        session = await _held(h, _withdrawals(h))
        turn.set()
        await h.wait_state(session.id, State.FAILED)
        failed = await _get(h, session.id)
        assert failed.failure_reason == f"stopped before the start was sent: {PAYER_REASON}"
        assert failed.refundable_msat == PAID and sent == []
        assert (await check_ledger(db)).ok


async def test_a_restart_while_held_continues_to_the_stop_or_the_timeout(db: Database) -> None:
    async with harness(db, start_timeout=30.0) as h:
        withdrawals = _withdrawals(h)
        starts = await _held(h, withdrawals)
        silent = await _held(h, withdrawals)
    # A new process over the same store; the start timeout has (nearly) passed for both.
    async with harness(db, start_timeout=1.0) as again:
        assert (await _get(again, starts.id)).stop_requested
        # One charger's StartTransaction arrives (queued while strom was down): stopped.
        await again.sessions.on_transaction_started(TransactionStarted(
            "cp-1", starts.active_connector_id or 1, 88, starts.id_tag, 0.0, utcnow()))
        await eventually(lambda: _value(again.chargers.stops), lambda s: ("cp-1", 88) in s)
        await again.sessions.on_transaction_stopped("cp-1", 88, 0.0, "Remote")
        stopped = await _get(again, starts.id)
        assert stopped.state == State.STOPPED and stopped.refundable_msat == PAID - 10_000
        # The other never starts: failed at its start timeout, all of it refundable.
        await again.wait_state(silent.id, State.FAILED)
        assert (await _get(again, silent.id)).refundable_msat == PAID
        assert (await check_ledger(db)).ok


async def _value(value: object) -> object:
    return value
