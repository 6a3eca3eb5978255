"""The one payout skeleton: claim → send → record-or-pending, for every backend.

A backend supplies only `send` (hand the invoice to the node once) and `lookup` (what the node
knows about a payment hash). The rule for a payment hash already on record is the same for all:

- succeeded → return it; the node is not asked and nothing is sent again;
- pending → look it up, never send: the node may have it in flight, and sending a hash it
  already has could pay twice. A lookup that cannot be made leaves it pending. A node that never
  heard of it turns it failed ("never reached …") only when no attempt of this process is
  running and the row is older than the backend's `grace` (a request may still be on its way:
  NIP-47 requests cross a relay; LND registers a payment before it answers, so its grace is 0);
- failed → may be sent again (no money moved), after a lookup in case an earlier attempt did
  reach the node after all.

The claim is taken in the store (`LightningRepository.claim_payment`), so two processes on one
store (the server and the CLI) send a hash once; within a process concurrent callers share one
attempt (`SingleFlight`). Invoices the store issued itself are refused before any claim.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bolt11 import Bolt11

from strom.lightning.shared import (
    SingleFlight,
    decode_invoice,
    normalized,
    payment_result,
    refusal,
)
from strom.lightning.wallet import PaymentResult, PaymentStatus, WalletError
from strom.store.lightning import LightningRepository, StoredPayment
from strom.timeutil import parse_iso, utcnow

log = logging.getLogger(__name__)

OWN_INVOICE = "this invoice was issued by this wallet; strom never pays itself"

# send(invoice, payment_hash, amount_msat, max_fee_msat) → the outcome, PENDING if not known yet.
Send = Callable[[str, str, int, int | None], Awaitable[PaymentResult]]
# lookup(payment_hash, amount_msat) → the node's view, None if it never heard of the hash;
# raises WalletError when it cannot be asked.
Lookup = Callable[[str, int], Awaitable[PaymentResult | None]]


def pending(payment_hash: str, amount_msat: int) -> PaymentResult:
    """An outcome not known yet: look it up later, never send again."""
    return PaymentResult(payment_hash, PaymentStatus.PENDING, amount_msat)


class Payouts:
    """`Payouts(repo, backend, network, send=…, lookup=…)`: a wallet's `pay` and
    `payment_status`, once per payment hash."""

    def __init__(self, repo: LightningRepository, backend: str, network: str, *, send: Send,
                 lookup: Lookup, never_reached: str, grace: timedelta = timedelta(0)) -> None:
        self._repo = repo
        self._backend = backend
        self._network = network
        self._send = send
        self._lookup = lookup
        self._never_reached = never_reached  # the failure reason of a hash the node never saw
        self._grace = grace
        self._flights = SingleFlight()

    async def pay(self, invoice: str, max_fee_msat: int | None = None) -> PaymentResult:
        """Pay once. PENDING means the outcome is not known yet: look it up later."""
        decoded = decode_invoice(invoice)
        return await self._flights.run(
            decoded.payment_hash, lambda: self._pay_once(normalized(invoice), decoded, max_fee_msat))

    async def status(self, payment_hash: str) -> PaymentResult | None:
        """Stored outcome; a pending one is looked up at the node and recorded when final.
        Raises WalletError when the node cannot be asked (reconcile loops report it)."""
        stored = await self._repo.payment(payment_hash)
        if stored is None or stored.backend != self._backend:
            return None
        return await self._refresh(stored, sending=self._flights.running(payment_hash))

    async def drain(self) -> None:
        """Wait for the attempts still running (on close): their outcome is still recorded."""
        await self._flights.drain()

    async def record(self, result: PaymentResult) -> PaymentResult:
        """Store the final outcome of an outgoing payment (pending stays pending)."""
        if result.status == PaymentStatus.PENDING:
            return result
        stored = await self._repo.finish_payment(
            result.payment_hash, status=result.status.value, fee_msat=result.fee_msat,
            preimage=result.preimage, failure_reason=result.failure_reason)
        if stored is None:
            return result
        log.info("%s: payment %s… %s (%s)", self._backend, result.payment_hash[:16],
                 stored.status, stored.failure_reason or f"fee {stored.fee_msat} msat")
        return payment_result(stored)

    async def _pay_once(self, invoice: str, decoded: Bolt11,
                        max_fee_msat: int | None) -> PaymentResult:
        payment_hash = decoded.payment_hash
        amount = int(decoded.amount_msat or 0)
        existing = await self._repo.payment(payment_hash)
        if existing is not None and existing.status != "failed":
            # Only this flight sends this hash here: a pending row is a past attempt.
            return await self._known(existing, sending=False)
        reason = refusal(decoded, self._network)
        if reason is None and await self._repo.invoice(payment_hash) is not None:
            reason = OWN_INVOICE
        if reason is not None:
            if amount <= 0:
                raise WalletError(reason)  # nothing to record: a payment needs an amount
            return payment_result(await self._repo.record_final(
                payment_hash=payment_hash, backend=self._backend, bolt11=invoice,
                amount_msat=amount, status="failed", failure_reason=reason))
        known: PaymentResult | None = None
        unreachable = False
        if existing is not None:
            # Failed before: the node may have it after all. Never send a hash it knows. Asked
            # before the claim, so the answer is about earlier attempts, not this one.
            try:
                known = await self._lookup(payment_hash, amount)
            except WalletError:
                unreachable = True
        claim = await self._repo.claim_payment(payment_hash=payment_hash, backend=self._backend,
                                               bolt11=invoice, amount_msat=amount)
        if not claim.granted:  # another process claimed it just now and may be sending it
            return await self._known(claim.payment, sending=True)
        if unreachable:
            return pending(payment_hash, amount)  # claimed, not sent: the lookup decides later
        if known is not None and known.status != PaymentStatus.FAILED:
            return await self.record(known)
        try:
            result = await self._send(invoice, payment_hash, amount, max_fee_msat)
        except WalletError as exc:
            log.warning("%s: payment %s… state unknown (%s); will look it up", self._backend,
                        payment_hash[:16], exc)
            return pending(payment_hash, amount)
        return await self.record(result)

    async def _known(self, stored: StoredPayment, *, sending: bool) -> PaymentResult:
        """A payment already on record, refreshed if pending; the stored row when the node
        cannot be asked."""
        try:
            return await self._refresh(stored, sending=sending)
        except WalletError:
            return payment_result(stored)

    async def _refresh(self, stored: StoredPayment, *, sending: bool) -> PaymentResult:
        if stored.status != "pending":
            return payment_result(stored)
        known = await self._lookup(stored.payment_hash, stored.amount_msat)
        if known is None:
            if sending or utcnow() - parse_iso(stored.updated_at) < self._grace:
                return payment_result(stored)
            # Claimed but never reached the node (we stopped in between): nothing was sent.
            known = PaymentResult(stored.payment_hash, PaymentStatus.FAILED, stored.amount_msat,
                                  failure_reason=self._never_reached)
        if known.status == PaymentStatus.PENDING:
            return payment_result(stored)
        return await self.record(known)
