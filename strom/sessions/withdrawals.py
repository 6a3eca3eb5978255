"""Refund by withdraw link (LUD-03): the payer's token stops the session, then offers exactly
what is refundable under a fresh one-time k1; the k1 and the payer's invoice claim it once.

The claim itself (check k1 in constant time, decode, claim in one transaction, pay once) is
`RefundService.withdraw`; this module is the one way every interface reaches it: the LNURL
withdraw routes, the charger's QR with `?s={token}` and the demo refund button.
"""

from __future__ import annotations

from dataclasses import dataclass

from strom.lightning.wallet import PaymentStatus
from strom.sessions.lifecycle import SessionService
from strom.sessions.model import Session, State
from strom.sessions.payer_stop import PayerStop, SessionToken
from strom.sessions.refunds import RefundError, RefundOutcome, RefundService
from strom.sessions.refusals import Refused

# While a stop asked during `starting` waits for the charger's answer (`stop_requested`).
STOP_HELD = ("your stop is being applied: the charger has not answered the start yet. Your "
             "refund is offered once it has (at most a few minutes): open this link again then")


class WithdrawRefused(Refused):
    """No withdrawal: the message says why, for the payer."""


class RefundFailed(WithdrawRefused):
    """The refund payment failed; the amount is refundable again."""


@dataclass(frozen=True, slots=True)
class WithdrawOffer:
    """A withdrawRequest: `k1` for exactly `session.refundable_msat`."""

    session: Session
    k1: str


class Withdrawals:
    """`offer(token)` for the withdrawRequest, `claim(token, k1, invoice)` for its callback."""

    def __init__(self, *, sessions: SessionService, stops: PayerStop,
                 refunds: RefundService) -> None:
        self._sessions = sessions
        self._stops = stops
        self._refunds = refunds

    async def offer(self, token: SessionToken) -> WithdrawOffer:
        """Stop the session if it still runs, then a fresh k1 for exactly what is refundable;
        raises `Refused` saying why not."""
        session = await self._stops.stop(token)
        if session.state == State.RESERVED:
            raise WithdrawRefused("your reservation holds the connector: pay to charge with "
                                  "the top-up on your session page, or cancel the reservation "
                                  "there (or DM cancel)")
        if session.stop_requested:
            raise WithdrawRefused(STOP_HELD)
        if session.refundable_msat <= 0:
            if session.held_msat > 0:
                raise WithdrawRefused(f"{session.held_msat // 1000} sat are held until the "
                                      "charger confirms the stop; open this link again later")
            raise WithdrawRefused("your refund was already paid" if session.refunded_msat
                                  else "nothing to refund: the prepayment was used up")
        return WithdrawOffer(session, await self._refunds.new_withdraw_link(session))

    async def claim(self, token: SessionToken, k1: str, invoice: str) -> RefundOutcome:
        """Pay `invoice` from the session's refundable amount, once per k1; raises
        `WithdrawRefused` (`RefundFailed` when the payment failed)."""
        session = await self._sessions.by_token(token.token)
        if session is None or (token.cp_id is not None and session.cp_id != token.cp_id):
            raise WithdrawRefused("unknown session link")
        if not k1 or not invoice:
            raise WithdrawRefused("k1 and pr are required")
        try:
            outcome = await self._refunds.withdraw(session, k1, invoice)
        except RefundError as exc:
            raise WithdrawRefused(str(exc)) from None
        if outcome.status == PaymentStatus.FAILED:
            raise RefundFailed("the refund payment failed; open your stop & refund link to try "
                               "again")
        return outcome
