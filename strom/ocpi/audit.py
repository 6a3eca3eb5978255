"""The roaming part of `strom ledger check`: what each eMSP owes is its sessions' costs.

For every roaming session its cost equals what the roaming book holds for it (and so the
CDR strom sent, whose total is that cost), and no roaming session claims an OCPP transaction
a lightning session claims (a payer would pay for an eMSP's customer's energy).
"""

from __future__ import annotations

from collections.abc import Callable

from strom.store.db import Database
from strom.store.ocpi import RoamingRepository

Say = Callable[[str, str, str | None], None]


async def check_roaming(db: Database, say: Say) -> tuple[int, int]:
    """(sessions, msat owed by eMSPs); problems go to `say(kind, message, session_id)`."""
    repo = RoamingRepository(db)
    count = owed = 0
    for session, booked in await repo.books():
        count += 1
        owed += session.cost_msat
        if session.cost_msat != booked:
            say("roaming_book_mismatch", f"roaming session {session.id}: cost "
                f"{session.cost_msat} msat != its book {booked} msat", None)
    for transaction_id in await repo.shared_transactions():
        say("roaming_transaction_shared", f"OCPP transaction {transaction_id} is claimed by a "
            "roaming session and a lightning session", None)
    return count, owed
