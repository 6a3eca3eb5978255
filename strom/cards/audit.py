"""The card part of `strom ledger check`: card money never mixes with lightning money.

For every prepaid account its balance equals what its book (`card_ledger`) adds up to and is
never negative; for every card session what it consumed equals what the book drew from its
account for it, a free card's session consumed nothing, and no card session claims an OCPP
transaction a lightning session also claims (a payer would pay for a card's energy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from strom.store.cards import CardRepository, Rule
from strom.store.db import Database

Say = Callable[[str, str, str | None], None]


@dataclass
class CardTotals:
    sessions: int = 0
    consumed_msat: int = 0
    balance_msat: int = 0
    free_wh: float = 0.0


async def check_cards(db: Database, say: Say, findings: list[str]) -> CardTotals:
    """Check the card books; problems go to `say(kind, message, session_id)`."""
    repo = CardRepository(db)
    totals = CardTotals()
    for account_id, balance, booked in await repo.account_books():
        totals.balance_msat += balance
        if balance != booked:
            say("card_account_mismatch", f"card account {account_id}: balance {balance} msat"
                f" != its ledger {booked} msat", None)
    for session, booked in await repo.session_books():
        totals.sessions += 1
        totals.consumed_msat += session.consumed_msat
        if session.rule == Rule.FREE:
            totals.free_wh += session.energy_wh
        if booked != session.consumed_msat:
            say("card_session_mismatch", f"card session {session.id}: ledger {booked} msat !="
                f" consumed {session.consumed_msat} msat", None)
        if session.unbilled_msat:
            findings.append(f"card session {session.id} at {session.cp_id}: {session.unbilled_msat}"
                            f" msat of energy beyond account {session.account_id}'s balance")
    for card_session, lightning_session in await repo.lightning_overlaps():
        say("card_session_on_payer", f"card session {card_session} and lightning session"
            f" {lightning_session} claim the same OCPP transaction", lightning_session)
    return totals
