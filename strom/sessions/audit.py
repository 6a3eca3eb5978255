"""`strom ledger check`: prove the money invariant for every session.

For every session: paid = consumed + refunded + forfeited + held + refundable with
refundable ≥ 0 (`held` is the part of the session's balance an unconfirmed stop keeps back; it
is not a ledger movement, so the session account's balance is held + refundable, and money is
held only while a stop is unconfirmed),
the ledger's entries add up to the session's columns, every paid invoice is counted once in
`paid`, and the refunds (pending or succeeded) add up to `refunded`. Against the wallet: every
payment it received for a session invoice is in the ledger, and every refund it paid is too.

Energy a charger delivered beyond a session's payment (`unbilled_msat`) is listed as a finding
for the operator: it is money strom could not collect, not a mismatch of the books. So is the
energy of an extra transaction (another one a charger started with a session's idTag while the
session had its own: not the payer's, `extra_transactions`), each with its transaction id and
charger, and in total (`extra_unbilled_wh`).

Against theft (issue 16): every refund went to the session's payer capability (a withdraw
link issued through the payer's token, or the zap sender's own lightning address), and no
refund was claimed before the charger's final meter reading.

Each problem is a line in `problems` (the report's shape since the start) and an entry with
its `kind` in `problem_kinds`, so programs can tell a theft from a bookkeeping error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strom.cards.audit import check_cards
from strom.ocpi.audit import check_roaming
from strom.sessions import ledger
from strom.sessions.model import Session, State
from strom.sessions.repository import SessionRepository
from strom.store.db import Database
from strom.store.extra_transactions import ExtraTransactionRepository
from strom.store.ledger import LedgerRepository
from strom.store.refunds import RefundRepository


@dataclass
class LedgerReport:
    sessions: int = 0
    received_msat: int = 0
    consumed_msat: int = 0
    refunded_msat: int = 0
    forfeited_msat: int = 0
    held_msat: int = 0
    refundable_msat: int = 0
    unbilled_msat: int = 0
    # Extra transactions (not the payer's, never billed): each, and the energy they delivered.
    extra_transactions: list[dict[str, Any]] = field(default_factory=list)
    extra_unbilled_wh: float = 0.0
    problems: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # unbilled energy: not ledger errors
    problem_kinds: list[dict[str, str | None]] = field(default_factory=list)
    # Owner cards (issue 21): their own kind of session, paid from operator accounts.
    card_sessions: int = 0
    card_consumed_msat: int = 0
    card_accounts_msat: int = 0
    # Roaming (OCPI, issue 24): sessions billed to eMSPs, postpaid.
    roaming_sessions: int = 0
    roaming_owed_msat: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def say(self, kind: str, message: str, session_id: str | None = None) -> None:
        """Record one problem: its words, and its kind for programs."""
        self.problems.append(message)
        self.problem_kinds.append({"kind": kind, "session_id": session_id, "message": message})

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "sessions": self.sessions, "received_msat": self.received_msat,
                "consumed_msat": self.consumed_msat, "refunded_msat": self.refunded_msat,
                "forfeited_msat": self.forfeited_msat, "held_msat": self.held_msat,
                "refundable_msat": self.refundable_msat, "unbilled_msat": self.unbilled_msat,
                "extra_transactions": self.extra_transactions,
                "extra_unbilled_wh": self.extra_unbilled_wh,
                "problems": self.problems, "findings": self.findings,
                "problem_kinds": self.problem_kinds, "card_sessions": self.card_sessions,
                "card_consumed_msat": self.card_consumed_msat,
                "card_accounts_msat": self.card_accounts_msat,
                "roaming_sessions": self.roaming_sessions,
                "roaming_owed_msat": self.roaming_owed_msat}


async def check_ledger(db: Database) -> LedgerReport:
    """The report over one consistent snapshot of the store.

    The process shares one connection, so the check holds the store's transaction lock while
    it reads: a payment committed half-way through would otherwise show up as a mismatch
    between a session read before it and its invoices read after.
    """
    async with db.transaction():
        return await _check(db)


async def _check(db: Database) -> LedgerReport:
    report = LedgerReport()
    repo, refund_repo = SessionRepository(db), RefundRepository(db)
    offset = 0
    while batch := await repo.list(limit=500, offset=offset):
        offset += len(batch)
        for s in batch:
            report.sessions += 1
            report.received_msat += s.paid_msat
            report.consumed_msat += s.consumed_msat
            report.refunded_msat += s.refunded_msat
            report.forfeited_msat += s.forfeited_msat
            report.held_msat += s.held_msat
            report.refundable_msat += s.refundable_msat
            report.unbilled_msat += s.unbilled_msat
            if s.refundable_msat < 0:
                report.say("refundable_negative",
                           f"session {s.id}: refundable is negative ({s.refundable_msat} msat)",
                           s.id)
            if s.held_msat and s.state != State.STOPPING_UNCONFIRMED:
                report.say("held_while_not_unconfirmed",
                           f"session {s.id}: {s.held_msat} msat held while {s.state.value}", s.id)
            if s.unbilled_msat:
                report.findings.append(
                    f"session {s.id} at {s.cp_id}: unbilled energy: {s.energy_wh:.0f} Wh"
                    f" delivered, {s.unbilled_msat} msat (~{s.unbilled_wh:.0f} Wh) beyond the"
                    " payment")
            totals = await ledger.totals(db, s.id)
            for name, booked, column in (
                ("received", totals.received_msat, s.paid_msat),
                ("consumed", totals.consumed_msat, s.consumed_msat),
                ("refunded", totals.refunded_msat, s.refunded_msat),
                ("forfeited", totals.forfeited_msat, s.forfeited_msat),
            ):
                if booked != column:
                    report.say("ledger_mismatch", f"session {s.id}: ledger {name} {booked} msat"
                               f" != session {column} msat", s.id)
            invoiced = await repo.paid_invoices_total(s.id)
            if invoiced > s.paid_msat:
                report.say("invoices_exceed_paid", f"session {s.id}: paid invoices {invoiced}"
                           f" msat > paid {s.paid_msat} msat", s.id)
            refunds = await refund_repo.live_total(s.id)
            if refunds != s.refunded_msat:
                report.say("refunds_mismatch", f"session {s.id}: refunds {refunds} msat !="
                           f" refunded {s.refunded_msat} msat", s.id)
            await _refund_routes(refund_repo, s, report)
    duplicate = await LedgerRepository(db).duplicate_payment()
    if duplicate:
        report.say("payment_duplicate",
                   f"payment {duplicate[0]} is recorded {duplicate[1]} times")
    await _against_wallet(repo, refund_repo, report)
    await _extra_transactions(ExtraTransactionRepository(db), report)
    cards = await check_cards(db, report.say, report.findings)
    report.card_sessions = cards.sessions
    report.card_consumed_msat = cards.consumed_msat
    report.card_accounts_msat = cards.balance_msat
    report.roaming_sessions, report.roaming_owed_msat = await check_roaming(db, report.say)
    return report


async def _extra_transactions(extras: ExtraTransactionRepository, report: LedgerReport) -> None:
    """Each extra transaction, and what the ones the charger stopped delivered: energy strom
    could not bill (a finding, not a mismatch: no payer's money moved)."""
    for extra in await extras.all():
        energy = extra.energy_wh
        report.extra_transactions.append({
            "transaction_id": extra.transaction_id, "cp_id": extra.cp_id,
            "connector_id": extra.connector_id, "session_id": extra.session_id,
            "open": extra.open, "energy_wh": energy})
        what = (f"transaction {extra.transaction_id} at {extra.cp_id}: an extra transaction"
                f" with the idTag of session {extra.session_id}")
        if energy is None:
            report.findings.append(f"{what}, still running (strom keeps asking the charger to"
                                   " stop it); its energy will not be billed")
        else:
            report.extra_unbilled_wh += energy
            report.findings.append(f"{what}: unbilled energy: {energy:.0f} Wh delivered, not"
                                   " billed to anyone")


async def _against_wallet(sessions: SessionRepository, refunds: RefundRepository,
                          report: LedgerReport) -> None:
    """The wallet's own records (strom/store/lightning.py) must agree with the sessions'."""
    for row in await sessions.invoices_unlike_wallet():
        if row["wallet"] == "paid":
            report.say("wallet_invoice_mismatch", f"invoice {row['payment_hash'][:16]}…: the"
                       " wallet received it, the ledger not")
        else:
            report.say("wallet_invoice_mismatch", f"invoice {row['payment_hash'][:16]}…:"
                       f" counted as paid, the wallet says {row['wallet']}")
    for row in await refunds.unlike_wallet():
        report.say("wallet_refund_mismatch", f"refund {row['payment_hash'][:16]}…: refund is"
                   f" {row['ours']}, the wallet's payment {row['wallet']}")


# Session states in which the charger may still draw from the budget (a reservation: the
# fee is not the payer's to take back while it holds the connector).
_RUNNING = {State.RESERVED.value, State.PAID.value, State.STARTING.value, State.CHARGING.value, State.STOPPING.value}


async def _refund_routes(refunds: RefundRepository, s: Session, report: LedgerReport) -> None:
    """Every refund of `s` went to the payer's capability, after the charger's final reading.

    Refunds claimed before the capabilities migration (0010) have no recorded route and are
    not judged.
    """
    for r in await refunds.routes(s.id):
        what = f"session {s.id}: refund {r['payment_hash'][:16]}… of {r['amount_msat']} msat"
        if r["route"] == "withdraw_link":
            to_payer = (r["link_session"] == s.id and r["issued_via"] == "payer_token"
                        and r["used_at"] is not None)
        elif r["route"] == "payer_lud16":
            to_payer = s.payer_pubkey is not None and r["destination"] == s.payer_lud16
        else:
            to_payer = False
        if not to_payer:
            report.say("refund_not_to_payer", f"{what} went by {r['route']} to "
                       f"{r['destination']}, not to the payer's capability", s.id)
        if r["final_reading"] != 0 and r["claimed_state"] not in _RUNNING:
            continue
        if r["claimed_state"] == State.STOPPING_UNCONFIRMED.value:
            # By design (issue 17): paid out while the worst case until the charger's final
            # reading was held back. Worth knowing, not a mismatch.
            report.findings.append(f"{what} was paid before the charger's final meter reading"
                                   " (stop unconfirmed; the worst case was held back)")
        else:
            report.say("refund_before_final_reading", f"{what} was claimed while the session "
                       f"was {r['claimed_state']}, before the charger's final meter reading",
                       s.id)
