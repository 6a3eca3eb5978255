"""The refund state machine: withdraw claims paid once, refusals, failed and pending refunds,
recovery, forfeits, the ledger check; real SQLite, doubles at the wallet edge."""

from __future__ import annotations

import asyncio

import pytest

from strom.lightning.wallet import PaymentStatus
from strom.sessions.audit import check_ledger
from strom.sessions.model import State
from strom.sessions.refunds import RefundError, RefundOutcome
from strom.timeutil import utcnow
from tests.doubles.edges import make_invoice
from tests.unit.sessions_support import TARIFF, Harness


async def _withdraw_ready(h: Harness) -> tuple[str, str]:
    sid = await h.charging_session()
    session = await h.sessions.request_stop(sid, "driver")
    assert session.transaction_id is not None
    await h.sessions.on_transaction_stopped("cp-1", session.transaction_id, 1000.0, "Remote")
    session = await h.sessions.repo.get(sid)  # type: ignore[assignment]
    assert session is not None and session.state == State.STOPPED
    return sid, await h.refunds.new_withdraw_link(session)


async def test_hundred_concurrent_withdraws_pay_once(h: Harness) -> None:
    sid, k1 = await _withdraw_ready(h)
    session = await h.sessions.repo.get(sid)
    assert session is not None
    invoice = make_invoice(session.refundable_msat)
    h.wallet.pay_delay = 0.05
    results = await asyncio.gather(*(h.refunds.withdraw(session, k1, invoice) for _ in range(100)),
                                   return_exceptions=True)
    ok = [r for r in results if not isinstance(r, Exception)]
    assert len(ok) == 1 and ok[0].status == PaymentStatus.SUCCEEDED
    assert all(isinstance(r, RefundError) for r in results if r not in ok)
    assert len(h.wallet.pay_calls) == 1
    session = await h.sessions.repo.get(sid)
    assert session is not None
    assert session.state == State.REFUNDED and session.refundable_msat == 0
    assert (await check_ledger(h.db)).ok


async def test_withdraw_refusals(h: Harness) -> None:
    sid, k1 = await _withdraw_ready(h)
    session = await h.sessions.repo.get(sid)
    assert session is not None
    too_much = make_invoice(session.refundable_msat + 1000)
    with pytest.raises(RefundError, match="only"):
        await h.refunds.withdraw(session, k1, too_much)
    with pytest.raises(RefundError, match="wrong network"):
        await h.refunds.withdraw(session, k1, make_invoice(1000, currency="bc"))
    with pytest.raises(RefundError, match="expired"):
        await h.refunds.withdraw(session, k1, make_invoice(1000, expiry=60, created=int(utcnow().timestamp()) - 120))
    with pytest.raises(RefundError, match="not a valid"):
        await h.refunds.withdraw(session, k1, "lnbcrt1garbage")
    with pytest.raises(RefundError, match="unknown withdraw link"):
        await h.refunds.withdraw(session, "0" * 64, make_invoice(1000))
    assert h.wallet.pay_calls == []


async def test_failed_refund_is_reversed_and_can_be_claimed_again(h: Harness) -> None:
    sid, k1 = await _withdraw_ready(h)
    session = await h.sessions.repo.get(sid)
    assert session is not None
    refundable = session.refundable_msat
    h.wallet.pay_outcome = PaymentStatus.FAILED
    outcome = await h.refunds.withdraw(session, k1, make_invoice(refundable))
    assert outcome.status == PaymentStatus.FAILED
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.refundable_msat == refundable
    assert session.state == State.STOPPED
    h.wallet.pay_outcome = PaymentStatus.SUCCEEDED
    k1_again = await h.refunds.new_withdraw_link(session)
    await h.refunds.withdraw(session, k1_again, make_invoice(refundable))
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.state == State.REFUNDED
    assert (await check_ledger(h.db)).ok


async def _pending_withdraw(h: Harness) -> tuple[str, RefundOutcome]:
    """A session ready to withdraw, claimed while the wallet answers PENDING."""
    sid, k1 = await _withdraw_ready(h)
    session = await h.sessions.repo.get(sid)
    assert session is not None
    h.wallet.pay_outcome = PaymentStatus.PENDING
    return sid, await h.refunds.withdraw(session, k1, make_invoice(session.refundable_msat))


async def test_pending_refund_is_looked_up_not_repeated(h: Harness) -> None:
    sid, outcome = await _pending_withdraw(h)
    assert outcome.status == PaymentStatus.PENDING
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.refundable_msat == 0 and session.state == State.STOPPED
    # The wallet learns the payment went through; recovery finishes it without paying again.
    h.wallet.payments[outcome.payment_hash] = h.wallet.payments[outcome.payment_hash].__class__(
        outcome.payment_hash, PaymentStatus.SUCCEEDED, outcome.amount_msat)
    await h.refunds.recover()
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.state == State.REFUNDED
    assert len(h.wallet.pay_calls) == 1
    assert (await check_ledger(h.db)).ok


async def test_refund_claimed_but_never_sent_is_paid_on_recovery(h: Harness) -> None:
    """A crash between claiming the refund and calling the wallet: the wallet knows nothing."""
    sid, outcome = await _pending_withdraw(h)
    del h.wallet.payments[outcome.payment_hash]  # as if pay() had never been reached
    h.wallet.pay_calls.clear()
    h.wallet.pay_outcome = PaymentStatus.SUCCEEDED
    await h.refunds.recover()
    await h.refunds.recover()
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.state == State.REFUNDED
    assert h.wallet.pay_calls == [outcome.payment_hash]  # once, not once per recovery
    assert (await check_ledger(h.db)).ok


async def test_unclaimed_refunds_are_forfeited_after_expiry(h: Harness) -> None:
    sid, _ = await _withdraw_ready(h)
    await h.db.execute("UPDATE sessions SET stopped_at = '2000-01-01T00:00:00Z' WHERE id = ?", (sid,))
    assert await h.refunds.forfeit_expired() == 1
    session = await h.sessions.repo.get(sid)
    assert session is not None and session.state == State.SETTLED
    assert session.refundable_msat == 0 and session.forfeited_msat > 0
    assert (await check_ledger(h.db)).ok


async def test_recovery_applies_a_payment_missed_while_down(h: Harness) -> None:
    cp = await h.cps.get("cp-1")
    assert cp is not None
    pending = await h.sessions.create_pending(cp, None, TARIFF, 700_000, description_hash=b"\0" * 32)
    h.wallet.settle(pending.payment_hash)  # paid while strom was not listening
    await h.sessions.recover()
    await h.wait_state(pending.session.id, State.STARTING)
    session = await h.sessions.repo.get(pending.session.id)
    assert session is not None and session.paid_msat == 700_000


async def test_ledger_check_finds_tampering(h: Harness) -> None:
    sid = await h.charging_session()
    await h.db.execute("UPDATE sessions SET consumed_msat = consumed_msat + 5 WHERE id = ?", (sid,))
    report = await check_ledger(h.db)
    assert not report.ok
    assert any("consumed" in p for p in report.problems)
