"""What every backend shares: BOLT11 checks, networks, store rows as interface values, and
single-flight so that concurrent calls for one payment hash share one attempt."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import bolt11
from bolt11 import Bolt11

from strom.events import EventBus, InvoicePaid
from strom.lightning.wallet import (
    Invoice,
    InvoiceState,
    InvoiceStatus,
    PaymentResult,
    PaymentStatus,
    WalletError,
)
from strom.store.lightning import LightningRepository, StoredInvoice, StoredPayment
from strom.timeutil import iso, parse_iso

log = logging.getLogger(__name__)

T = TypeVar("T")

# BOLT11 human-readable prefixes after "ln", per network.
CURRENCY = {"mainnet": "bc", "testnet": "tb", "signet": "tbs", "regtest": "bcrt"}
NETWORK_OF = {prefix: network for network, prefix in CURRENCY.items()}


def decode_invoice(invoice: str) -> Bolt11:
    """Decode and verify a BOLT11 string, or raise WalletError saying it is not one."""
    text = invoice.strip()
    if text.lower().startswith("lightning:"):
        text = text[len("lightning:"):]
    try:
        return bolt11.decode(text)
    except Exception as exc:  # the library raises many unrelated types for bad input
        raise WalletError(f"not a valid BOLT11 invoice ({type(exc).__name__})") from None


def normalized(invoice: str) -> str:
    """The invoice as strom stores and sends it: no `lightning:` prefix, lower case."""
    return invoice.strip().lower().removeprefix("lightning:")


def refusal(decoded: Bolt11, network: str) -> str | None:
    """Why this wallet will not pay `decoded`, or None if it may try."""
    found = NETWORK_OF.get(decoded.currency, decoded.currency)
    if found != network:
        return f"invoice is for {found}, this wallet is on {network}"
    if not decoded.amount_msat:
        return "invoice has no amount; strom pays only invoices that name one"
    if decoded.has_expired():
        return "invoice has expired"
    return None


def invoice_status(stored: StoredInvoice) -> InvoiceStatus:
    """The interface's view of a stored invoice."""
    state = InvoiceState(stored.state)
    paid = state == InvoiceState.PAID
    return InvoiceStatus(
        payment_hash=stored.payment_hash, state=state,
        amount_msat=stored.received_msat if paid and stored.received_msat else stored.amount_msat,
        preimage=stored.preimage if paid else None,
        paid_at=parse_iso(stored.paid_at) if paid and stored.paid_at else None)


def payment_result(stored: StoredPayment) -> PaymentResult:
    """The interface's view of a stored payment."""
    return PaymentResult(payment_hash=stored.payment_hash, status=PaymentStatus(stored.status),
                         amount_msat=stored.amount_msat, fee_msat=stored.fee_msat,
                         preimage=stored.preimage, failure_reason=stored.failure_reason)


async def record_paid(repo: LightningRepository, bus: EventBus, backend: str, payment_hash: str,
                      received_msat: int, preimage: str,
                      paid_at: datetime) -> StoredInvoice | None:
    """Mark one of our invoices paid and publish `InvoicePaid`, once: nothing happens (None)
    for an invoice that is not ours or was recorded before (the store's open → paid step
    decides)."""
    paid = await repo.mark_paid(payment_hash, received_msat=received_msat, preimage=preimage,
                                paid_at=iso(paid_at), backend=backend)
    if paid is None:
        return None
    log.info("%s: invoice %s… paid, %d msat", backend, payment_hash[:16], received_msat)
    bus.publish(InvoicePaid(payment_hash, received_msat, preimage, paid_at))
    return paid


async def record_invoice(repo: LightningRepository, backend: str, network: str, bolt11: str,
                         amount_msat: int, *, description: str | None,
                         description_hash: bytes | None, payment_hash: str | None = None,
                         preimage: str | None = None) -> Invoice:
    """Record an invoice a node made for us as open, after checking it is what was asked:
    what strom hands to a payer must be for this amount, network and description hash (and
    payment hash, unless None: the node did not name one)."""
    decoded = decode_invoice(bolt11)
    if (int(decoded.amount_msat or 0) != amount_msat
            or NETWORK_OF.get(decoded.currency, decoded.currency) != network
            or (payment_hash is not None and payment_hash.lower() != decoded.payment_hash)
            or (description_hash is not None
                and decoded.description_hash != description_hash.hex())):
        raise WalletError(f"{backend} returned an invoice that does not match the request")
    expires_at = datetime.fromtimestamp(decoded.date + decoded.expiry, tz=UTC)
    await repo.add_invoice(
        payment_hash=decoded.payment_hash, backend=backend, bolt11=bolt11,
        amount_msat=amount_msat, expires_at=iso(expires_at), description=description,
        description_hash=description_hash.hex() if description_hash else None)
    return Invoice(bolt11, decoded.payment_hash, amount_msat, expires_at, preimage)


async def refreshed_status(repo: LightningRepository, backend: str, payment_hash: str,
                           look_up: Callable[[str], Awaitable[None]]) -> InvoiceStatus | None:
    """The stored state of one of `backend`'s invoices, looked up at the node first (which
    records what it says) while the invoice is not paid; None for an invoice not its own."""
    stored = await repo.invoice(payment_hash)
    if stored is None or stored.backend != backend:
        return None
    if stored.state != InvoiceState.PAID:
        await look_up(payment_hash)
        stored = await repo.invoice(payment_hash) or stored
    return invoice_status(stored)


async def answers(check: Callable[[], Awaitable[object]]) -> bool:
    """Whether a node answers `check` within the 3 s a health check may take."""
    try:
        async with asyncio.timeout(3):
            await check()
    except (WalletError, TimeoutError):
        return False
    return True


class Reachability:
    """Whether a backend answers; a change is logged once, not once per retry."""

    def __init__(self, logger: logging.Logger, back_again: str) -> None:
        self.up = True
        self._log = logger  # the backend's own, so its lines say where they come from
        self._back_again = back_again

    def __call__(self, up: bool, reason: str) -> None:
        if up and not self.up:
            self._log.info("%s", self._back_again)
        elif not up and self.up:
            self._log.warning("%s; strom keeps retrying in the background", reason)
        self.up = up


class SingleFlight:
    """Concurrent callers with the same key await one shared task.

    The task is shielded: a caller that gives up does not cancel a payment others wait for,
    and its outcome is still recorded.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[Any]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(task)

    def running(self, key: str) -> bool:
        return key in self._running

    async def drain(self) -> None:
        """Wait for the attempts still running (on close)."""
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
