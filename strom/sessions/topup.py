"""Top-up: an invoice that adds to a running session's budget.

The top-up token only pays (it is printed for others to scan); links printed before the
tokens were split carry the payer's token instead (`legacy`). The invoice's answer carries no
session link, whoever asks. A zap from the payer of a running session tops it up too, through
`checkout.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from strom.lightning.wallet import WalletError
from strom.lnurl import pay as lud06
from strom.sessions.lifecycle import PendingPayment, SessionService
from strom.sessions.model import Session
from strom.sessions.refusals import Refused
from strom.sessions.stopping import SessionError

MIN_TOPUP_MSAT = 1000


class TopUpRefused(Refused):
    """No top-up invoice: the message says why, for the payer."""


class UnknownTopUp(TopUpRefused):
    """The token opens no session's top-up."""


@dataclass(frozen=True, slots=True)
class TopUpToken:
    """`value` is a session's top-up token, or with `legacy` its payer's token (old links)."""

    value: str
    legacy: bool = False


@dataclass(frozen=True, slots=True)
class TopUpOffer:
    """What a top-up payRequest shows: the metadata and the amounts still open."""

    session: Session
    metadata: str
    min_msat: int
    max_msat: int


class TopUps:
    """`offer(token)` for the payRequest and to find the session, `pay(offer, amount)` for the
    invoice."""

    def __init__(self, sessions: SessionService) -> None:
        self._sessions = sessions

    async def offer(self, token: TopUpToken) -> TopUpOffer:
        """Up to the tariff's largest prepayment, less what is paid; raises `UnknownTopUp`."""
        sessions = self._sessions
        session = await (sessions.by_token(token.value) if token.legacy
                         else sessions.by_topup_token(token.value))
        if session is None:
            raise UnknownTopUp("no such session")
        return TopUpOffer(
            session, lud06.metadata(f"Top up charging session {session.id} at {session.cp_id}"),
            MIN_TOPUP_MSAT,
            max(session.tariff.max_prepay_msat - session.paid_msat, MIN_TOPUP_MSAT))

    async def pay(self, offer: TopUpOffer, amount_msat: int) -> PendingPayment:
        """The top-up invoice for `amount_msat` into the session `offer` (what `offer(token)`
        found) names; raises `TopUpRefused` saying why not."""
        if why := lud06.amount_refusal(amount_msat, offer.min_msat, offer.max_msat):
            raise TopUpRefused(why)
        try:
            return await self._sessions.create_topup(
                offer.session, amount_msat, description_hash=lud06.description_hash(offer.metadata))
        except SessionError as exc:
            raise TopUpRefused(str(exc)) from None
        except WalletError:
            raise TopUpRefused("payments temporarily unavailable") from None
