"""Stop by the payer: only who holds the payer's capability may stop a session.

Two capabilities name a payer: the session's payer token (`/lnurlw/{token}`, the charger's
QR with `?s={token}`, the demo refund button) and a zap payer's key, checked by the interface
that saw it sign (a nostr DM's seal or author). Anything else finds no session, so it stops
nothing. The operator's stop is not this one (it needs no capability and keeps the refund
for the payer).
"""

from __future__ import annotations

from dataclasses import dataclass

from strom.sessions.lifecycle import SessionService
from strom.sessions.model import ACTIVE_STATES, Session, State
from strom.sessions.refusals import Refused

# A session the payer may still stop: paid and not yet ended.
STOPPABLE_STATES = (State.PAID, *ACTIVE_STATES)
PAYER_REASON = "stopped by the driver"


class NoSession(Refused):
    """The capability names no session (or, for a key, no running one) here."""


class NotPaid(Refused):
    pass


@dataclass(frozen=True, slots=True)
class SessionToken:
    """A session's payer token; with `cp_id`, only a session at that charge point."""

    token: str
    cp_id: str | None = None


@dataclass(frozen=True, slots=True)
class PayerKey:
    """A payer's nostr key (hex), as verified by the interface, at one charge point."""

    cp_id: str
    pubkey: str


PayerCapability = SessionToken | PayerKey


class PayerStop:
    """`await stop(capability)`: the payer's session, stopped (waiting for the charger)."""

    def __init__(self, sessions: SessionService) -> None:
        self._sessions = sessions

    async def stop(self, capability: PayerCapability) -> Session:
        """Stop the session `capability` names if it still runs, and wait for the charger's
        confirmation (`stop_and_wait`); an ended session is returned as it is. Raises
        `NoSession` or `NotPaid`."""
        session = await self._find(capability)
        if session.state == State.PENDING_PAYMENT:
            raise NotPaid("this session is not paid yet")
        if session.state in STOPPABLE_STATES:
            session = await self._sessions.stop_and_wait(session.id, PAYER_REASON)
        return session

    async def _find(self, capability: PayerCapability) -> Session:
        match capability:
            case SessionToken(token, cp_id):
                session = await self._sessions.by_token(token)
                if session is None or (cp_id is not None and session.cp_id != cp_id):
                    raise NoSession("unknown session link")
                return session
            case PayerKey(cp_id, pubkey):
                mine = await self._sessions.list(cp_id=cp_id, payer_pubkey=pubkey, limit=10)
                running = [s for s in mine if s.state in STOPPABLE_STATES]
                if not running:
                    raise NoSession("You have no running session here. Only the payer of a "
                                    "session can stop it.")
                return running[0]
