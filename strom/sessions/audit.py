"""`strom ledger check`: prove the money invariant for every session.

For every session: paid = consumed + refunded + forfeited + held + refundable with
refundable ≥ 0 (`held` is the part of the session's balance an unconfirmed stop keeps back; it
is not a ledger movement, so the session account's balance is held + refundable, and money is
held only while a stop is unconfirmed),
the ledger's entries add up to the session's columns, every paid invoice is counted once in
`paid`, and the refunds (pending or succeeded) add up to `refunded`. Against the wallet: every
payment it received for a session invoice is in the ledger, and every refund it paid is too.

Energy a charger delivered beyond a session's payment (`unbilled_msat`) is listed as a finding
for the operator: it is money strom could not collect, not a mismatch of the books.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strom.sessions import ledger
from strom.sessions.model import State
from strom.sessions.repository import SessionRepository
from strom.store.db import Database


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
    problems: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # unbilled energy: not ledger errors

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "sessions": self.sessions, "received_msat": self.received_msat,
                "consumed_msat": self.consumed_msat, "refunded_msat": self.refunded_msat,
                "forfeited_msat": self.forfeited_msat, "held_msat": self.held_msat,
                "refundable_msat": self.refundable_msat, "unbilled_msat": self.unbilled_msat,
                "problems": self.problems, "findings": self.findings}


async def check_ledger(db: Database) -> LedgerReport:
    report = LedgerReport()
    repo = SessionRepository(db)
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
            say = report.problems.append
            if s.refundable_msat < 0:
                say(f"session {s.id}: refundable is negative ({s.refundable_msat} msat)")
            if s.held_msat and s.state != State.STOPPING_UNCONFIRMED:
                say(f"session {s.id}: {s.held_msat} msat held while {s.state.value}")
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
                    say(f"session {s.id}: ledger {name} {booked} msat != session {column} msat")
            row = await db.fetchone(
                "SELECT COALESCE(SUM(amount_msat), 0) FROM session_invoices"
                " WHERE session_id = ? AND paid_at IS NOT NULL", (s.id,))
            invoiced = row[0] if row else 0
            if invoiced > s.paid_msat:
                say(f"session {s.id}: paid invoices {invoiced} msat > paid {s.paid_msat} msat")
            row = await db.fetchone(
                "SELECT COALESCE(SUM(amount_msat), 0) FROM refunds WHERE session_id = ?"
                " AND state IN ('pending', 'succeeded')", (s.id,))
            refunds = row[0] if row else 0
            if refunds != s.refunded_msat:
                say(f"session {s.id}: refunds {refunds} msat != refunded {s.refunded_msat} msat")
    duplicate = await db.fetchone(
        "SELECT ref, COUNT(*) FROM ledger WHERE kind = 'payment_received' GROUP BY ref"
        " HAVING COUNT(*) > 1")
    if duplicate:
        report.problems.append(f"payment {duplicate[0]} is recorded {duplicate[1]} times")
    await _against_wallet(db, report)
    return report


async def _against_wallet(db: Database, report: LedgerReport) -> None:
    """The wallet's own records (strom/store/lightning.py) must agree with the sessions'."""
    say = report.problems.append
    for row in await db.fetchall(
            "SELECT w.payment_hash, w.state AS wallet, i.paid_at FROM ln_invoices w"
            " JOIN session_invoices i ON i.payment_hash = w.payment_hash"
            " WHERE (w.state = 'paid') != (i.paid_at IS NOT NULL)"):
        if row["wallet"] == "paid":
            say(f"invoice {row['payment_hash'][:16]}…: the wallet received it, the ledger not")
        else:
            say(f"invoice {row['payment_hash'][:16]}…: counted as paid, the wallet says "
                f"{row['wallet']}")
    for row in await db.fetchall(
            "SELECT r.payment_hash, r.state AS ours, p.status AS wallet FROM refunds r"
            " JOIN ln_payments p ON p.payment_hash = r.payment_hash"
            " WHERE p.status = 'succeeded' AND r.state != 'succeeded'"
            " OR r.state = 'succeeded' AND p.status != 'succeeded'"):
        say(f"refund {row['payment_hash'][:16]}…: refund is {row['ours']}, "
            f"the wallet's payment {row['wallet']}")
