"""Stop by the payer, refund by withdraw link and to the payer's lightning address, as the
interfaces call them: a capability in, a session or a payment out, or a refusal saying why.

Real SQLite and services; the charger, the wallet and the payer's address are doubles at the
edges. The LNURL and DM paths over them are in tests/money and tests/nostr.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from strom.config import SessionSettings
from strom.lightning.wallet import PaymentStatus
from strom.sessions.address_refunds import AddressRefundService, Progress, refund_due
from strom.sessions.model import Session, State
from strom.sessions.payer_stop import NoSession, NotPaid, PayerKey, PayerStop, SessionToken
from strom.sessions.withdrawals import RefundFailed, Withdrawals, WithdrawRefused
from strom.store.address_refunds import AddressRefundRepository
from strom.store.db import Database
from tests.doubles.edges import make_invoice
from tests.doubles.lightning_address import AddressProvider
from tests.unit.sessions_support import TARIFF, Harness, harness

PAYER = "ab" * 32


@dataclass
class Payer:
    h: Harness
    stops: PayerStop
    withdrawals: Withdrawals

    async def session(self, sid: str) -> Session:
        session = await self.h.sessions.repo.get(sid)
        assert session is not None
        return session

    async def zapped_session(self, amount: int = 1_000_000) -> str:
        cp = await self.h.cps.get("cp-1")
        assert cp is not None
        pending = await self.h.sessions.create_pending(cp, None, TARIFF, amount,
                                                       description_hash=b"\0" * 32,
                                                       payer_pubkey=PAYER)
        self.h.wallet.settle(pending.payment_hash)
        await self.h.sessions.on_paid(pending.payment_hash, amount)
        return pending.session.id


@pytest.fixture
async def payer(db: Database) -> AsyncIterator[Payer]:
    async with harness(db) as h:
        stops = PayerStop(h.sessions)
        yield Payer(h, stops, Withdrawals(sessions=h.sessions, stops=stops, refunds=h.refunds))


async def test_the_payer_token_stops_and_withdraws_exactly_the_rest_once(payer: Payer) -> None:
    sid = await payer.h.charging_session(amount=1_000_000)
    token = SessionToken((await payer.session(sid)).token)
    offer = await payer.withdrawals.offer(token)  # stops first; the fake charger confirms
    assert offer.session.state in (State.STOPPED, State.STOPPING_UNCONFIRMED)
    amount = offer.session.refundable_msat
    assert amount > 0
    outcome = await payer.withdrawals.claim(token, offer.k1, make_invoice(amount))
    assert (outcome.amount_msat, outcome.status) == (amount, PaymentStatus.SUCCEEDED)
    with pytest.raises(WithdrawRefused, match="already used"):
        await payer.withdrawals.claim(token, offer.k1, make_invoice(1000))
    if (await payer.session(sid)).held_msat == 0:
        with pytest.raises(WithdrawRefused, match="your refund was already paid"):
            await payer.withdrawals.offer(token)


async def test_only_the_capability_finds_the_session(payer: Payer) -> None:
    sid = await payer.zapped_session()
    session = await payer.session(sid)
    for stranger in (SessionToken(session.view_token), SessionToken(session.topup_token),
                     SessionToken(session.token, cp_id="cp-2")):
        with pytest.raises(NoSession, match="unknown session link"):
            await payer.stops.stop(stranger)
        with pytest.raises(WithdrawRefused, match="unknown session link"):
            await payer.withdrawals.claim(stranger, "k1", make_invoice(1000))
    with pytest.raises(NoSession, match="Only the payer of a session can stop it"):
        await payer.stops.stop(PayerKey("cp-1", "cd" * 32))
    await payer.h.wait_state(sid, State.STARTING)  # the RemoteStart is out
    stopped = await payer.stops.stop(PayerKey("cp-1", PAYER))
    # Held until the charger answers: stopped by its payer, nothing refundable yet.
    assert (stopped.id, stopped.state, stopped.stop_requested) == (sid, State.STARTING, True)
    # (No withdraw is offered meanwhile: tests/unit/test_stop_while_starting.py.)
    await payer.h.wait_state(sid, State.FAILED)  # no StartTransaction in time: all refundable
    assert (await payer.session(sid)).refundable_msat == 1_000_000
    with pytest.raises(NoSession):  # nothing of theirs runs here any more
        await payer.stops.stop(PayerKey("cp-1", PAYER))


async def test_an_unpaid_session_is_neither_stopped_nor_refunded(payer: Payer) -> None:
    cp = await payer.h.cps.get("cp-1")
    assert cp is not None
    pending = await payer.h.sessions.create_pending(cp, None, TARIFF, 1_000_000,
                                                    description_hash=b"\0" * 32)
    with pytest.raises(NotPaid, match="not paid yet"):
        await payer.withdrawals.offer(SessionToken(pending.session.token))


async def test_a_failed_refund_payment_is_refused_and_refundable_again(payer: Payer) -> None:
    sid = await payer.h.paid_session()
    await payer.h.wait_state(sid, State.FAILED)  # the charger never started: all refundable
    token = SessionToken((await payer.session(sid)).token)
    offer = await payer.withdrawals.offer(token)
    payer.h.wallet.pay_outcome = PaymentStatus.FAILED
    with pytest.raises(RefundFailed, match="the refund payment failed"):
        await payer.withdrawals.claim(token, offer.k1, make_invoice(offer.session.refundable_msat))
    assert (await payer.session(sid)).refundable_msat == offer.session.refundable_msat
    with pytest.raises(WithdrawRefused, match="k1 and pr are required"):
        await payer.withdrawals.claim(token, "", "")


class Profiles:
    """The payers' published lightning addresses (the interface's side of the lookup)."""

    def __init__(self, addresses: dict[str, str]) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def lud16_of(self, pubkey: str) -> str | None:
        self.asked.append(pubkey)
        return self.addresses.get(pubkey)


async def test_an_ended_zap_session_is_refunded_to_the_payers_address(payer: Payer,
                                                                      db: Database) -> None:
    service = AddressRefundService(repo=AddressRefundRepository(db), bus=payer.h.bus,
                                   refunds=payer.h.refunds, settings=SessionSettings())
    sid = await payer.zapped_session()
    await payer.stops.stop(PayerKey("cp-1", PAYER))
    await payer.h.wait_state(sid, State.FAILED)  # the charger never started: all refundable
    session = await payer.session(sid)
    assert refund_due(session, session.state)
    assert not refund_due(session, State.CHARGING)
    assert await service.refund_to_payer(session, Profiles({})) is None  # no address: the link
    async with AddressProvider("driver").running() as provider:
        profiles = Profiles({PAYER: provider.address})
        refund = await service.refund_to_payer(session, profiles)
        assert refund is not None and (refund.address, refund.progress) == \
            (provider.address, Progress.DONE)
        assert profiles.asked == [PAYER] and len(provider.issued) == 1
    after = await payer.session(sid)
    assert after.refundable_msat == 0 and after.payer_lud16 == provider.address
    assert not refund_due(after, after.state)
    await service.close()


async def test_a_session_without_a_payer_key_is_never_refunded_to_an_address(
        payer: Payer, db: Database) -> None:
    service = AddressRefundService(repo=AddressRefundRepository(db), bus=payer.h.bus,
                                   refunds=payer.h.refunds, settings=SessionSettings())
    sid = await payer.h.paid_session()
    session = await payer.stops.stop(SessionToken((await payer.session(sid)).token))
    assert not refund_due(session, session.state)
    profiles = Profiles({PAYER: "driver@example.org"})
    assert await service.refund_to_payer(session, profiles) is None and profiles.asked == []
