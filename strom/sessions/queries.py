"""What interfaces may ask about sessions and the books, mixed into `SessionService`.

Pages, APIs and bots read through these, never through the repository: the SQL and its
tables stay the core's to change (docs/architecture.md, "The store").
"""

from __future__ import annotations

import builtins

from strom.sessions.audit import LedgerReport, check_ledger
from strom.sessions.model import Session, State
from strom.sessions.repository import SessionRepository
from strom.store.db import Database
from strom.store.ledger import LedgerRepository


class SessionQueries:
    """The read side of `SessionService`."""

    _db: Database
    repo: SessionRepository

    async def get(self, session_id: str) -> Session | None:
        return await self.repo.get(session_id)

    async def by_token(self, token: str) -> Session | None:
        """The session of a payer token (`/s/{token}`, stop and refund)."""
        return await self.repo.by_token(token)

    async def by_view_token(self, token: str) -> Session | None:
        """The session of a read-only view link."""
        return await self.repo.by_view_token(token)

    async def by_topup_token(self, token: str) -> Session | None:
        """The session of a top-up link (it can only pay into the session)."""
        return await self.repo.by_topup_token(token)

    async def in_states(self, *states: State) -> builtins.list[Session]:
        return await self.repo.in_states(*states)

    async def count(self, *, cp_id: str | None = None, state: State | None = None) -> int:
        return await self.repo.count(cp_id=cp_id, state=state)

    async def totals(self) -> dict[str, int]:
        """Sums over all sessions of the columns the money invariant ties together."""
        return await self.repo.totals()

    async def earned_since(self, since: str) -> dict[str, int]:
        """Energy sold per charge point since `since` (ISO), in msat."""
        return await LedgerRepository(self._db).earned_since(since)

    async def check_ledger(self) -> LedgerReport:
        """`strom ledger check` over the running store."""
        return await check_ledger(self._db)

    async def list(self, *, cp_id: str | None = None, state: State | None = None,
                   payer_pubkey: str | None = None, limit: int = 100,
                   offset: int = 0) -> builtins.list[Session]:
        """Newest first."""
        return await self.repo.list(cp_id=cp_id, state=state, payer_pubkey=payer_pubkey,
                                    limit=limit, offset=offset)
