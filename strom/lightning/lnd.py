"""The LND backend, on LND's REST API.

Money in: invoices are added with a description hash and recorded as open; a background task
follows `/v1/invoices/subscribe` from the last stored `settle_index`, and on every (re)connect
and every `reconcile_interval` looks up each open invoice, so a payment made while strom was
away is still seen. `InvoicePaid` is published by whoever turns the stored invoice paid, which
happens once. Money out: `/v2/router/send`, claimed in the store first; a payment whose fate is
unknown is looked up (`/v2/router/track`) before anything is sent again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from strom.config import LndSettings
from strom.events import EventBus
from strom.lightning.lnd_rest import NOT_FOUND, LndError, LndRest
from strom.lightning.payout import Payouts, pending
from strom.lightning.shared import (
    Reachability,
    answers,
    record_invoice,
    record_paid,
    refreshed_status,
)
from strom.lightning.wallet import (
    Invoice,
    InvoiceStatus,
    PaymentResult,
    PaymentStatus,
    Wallet,
    WalletConfigError,
    WalletError,
    WalletInfo,
    WalletUnavailable,
)
from strom.store.db import Database
from strom.store.lightning import LightningRepository

log = logging.getLogger(__name__)

BACKEND = "lnd"
_FAILURES = {
    "FAILURE_REASON_TIMEOUT": "timed out looking for a route",
    "FAILURE_REASON_NO_ROUTE": "no route to the payee",
    "FAILURE_REASON_ERROR": "the payment failed at the node",
    "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS": "the payee rejected the payment details",
    "FAILURE_REASON_INSUFFICIENT_BALANCE": "not enough outbound liquidity",
    "FAILURE_REASON_CANCELED": "the payment was canceled",
}


def _b64_hex(value: str | None) -> str:
    return base64.b64decode(value or "").hex()


def lnd_network(info: dict[str, Any]) -> str:
    chains = info.get("chains") or [{}]
    name = str(chains[0].get("network", ""))
    return "testnet" if name.startswith("testnet") else name


class LndWallet(Wallet):
    """`LndWallet(db, bus, settings.lightning.lnd, network)`; reconnects on its own."""

    def __init__(self, db: Database, bus: EventBus, settings: LndSettings, network: str, *,
                 max_fee_msat: int = 10_000, pay_timeout: int = 60, pay_wait: float = 75.0,
                 backoff: tuple[float, float] = (0.5, 30.0),
                 reconcile_interval: float = 60.0) -> None:
        self.network = network
        self.repo = LightningRepository(db)
        self._bus = bus
        self._reachability = Reachability(log, f"lnd at {settings.url.rstrip('/')} is reachable again")
        self._rest = LndRest(settings, on_reachable=self._reachability)
        self._max_fee_msat = max_fee_msat
        self._pay_timeout = pay_timeout  # LND's own limit for finding a route
        self._pay_wait = pay_wait  # how long pay() waits for a final state, then says PENDING
        self._backoff = backoff
        self._reconcile_interval = reconcile_interval
        self._node_id: str | None = None
        self._alias: str | None = None
        self._payouts = Payouts(self.repo, BACKEND, network, send=self._send,
                                lookup=self._track, never_reached="the payment never reached lnd")
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()  # set while the invoice stream is open (tests wait on it)

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the node (if it answers), then follow invoices in the background."""
        await self._rest.open()
        try:
            await self._check_node()
        except WalletUnavailable:
            pass  # already logged; the follower keeps trying
        self._task = asyncio.create_task(self._follow(), name="lnd:invoices")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._payouts.drain()
        await self._rest.close()

    async def _check_node(self) -> dict[str, Any]:
        info = await self._rest.get("/v1/getinfo")
        found = lnd_network(info)
        if found != self.network:
            raise WalletConfigError(f"lnd at {self._rest.url} is on {found or 'an unknown network'}"
                                    f" but [lightning] network is {self.network}")
        self._node_id = info.get("identity_pubkey")
        self._alias = info.get("alias")
        return info

    # --- following invoices -----------------------------------------------------------------

    async def _follow(self) -> None:
        delay = self._backoff[0]
        while True:
            reconciler: asyncio.Task[None] | None = None
            try:
                await self._check_node()
                cursor = f"{BACKEND}:{self._node_id}"
                settle_index = await self.repo.cursor(cursor)
                params = {"settle_index": settle_index} if settle_index else None
                reconciler = asyncio.create_task(self._reconcile_loop(), name="lnd:reconcile")
                async with self._rest.stream("GET", "/v1/invoices/subscribe",
                                             params=params) as updates:
                    self.connected.set()
                    delay = self._backoff[0]
                    async for update in updates:
                        await self._on_invoice(update, cursor)
                self._reachability(False, f"lnd at {self._rest.url} closed the invoice stream")
            except WalletError as exc:
                self._reachability(False, str(exc))
            except Exception:
                # A bug or an answer we cannot read must not end the follower for good.
                log.exception("lnd: following invoices failed; retrying in %.1f s", delay)
            finally:
                self.connected.clear()
                if reconciler is not None:
                    reconciler.cancel()
                    await asyncio.gather(reconciler, return_exceptions=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _on_invoice(self, update: dict[str, Any], cursor: str) -> None:
        state = update.get("state")
        payment_hash = _b64_hex(update.get("r_hash"))
        if state == "SETTLED":
            await self._settled(payment_hash, update)
        elif state == "CANCELED":
            await self.repo.mark_expired(payment_hash)
        settle_index = int(update.get("settle_index") or 0)
        if settle_index:
            # Only after the payment is recorded: a crash before this replays it, harmlessly.
            await self.repo.advance_cursor(cursor, settle_index)

    async def _settled(self, payment_hash: str, invoice: dict[str, Any]) -> None:
        received = int(invoice.get("amt_paid_msat") or invoice.get("value_msat") or 0)
        paid_at = datetime.fromtimestamp(int(invoice.get("settle_date") or 0), tz=UTC)
        preimage = _b64_hex(invoice.get("r_preimage"))
        await record_paid(self.repo, self._bus, BACKEND, payment_hash, received, preimage, paid_at)

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except WalletError:
                pass  # the follower logs reachability; the next round tries again
            except Exception:
                log.exception("lnd: reconciling invoices and payments failed")
            await asyncio.sleep(self._reconcile_interval)

    async def reconcile(self) -> None:
        """Ask LND about every open invoice and every payment of unknown outcome."""
        for stored in await self.repo.open_invoices(BACKEND):
            await self._lookup_invoice(stored.payment_hash)
        for payment in await self.repo.pending_payments(BACKEND):
            await self.payment_status(payment.payment_hash)

    async def _lookup_invoice(self, payment_hash: str) -> None:
        try:
            found = await self._rest.get(f"/v1/invoice/{payment_hash}")
        except LndError as exc:
            if exc.code == NOT_FOUND:
                await self.repo.mark_expired(payment_hash)  # the node forgot it: nobody pays it
                return
            raise
        if found.get("state") == "SETTLED":
            await self._settled(payment_hash, found)
        elif found.get("state") == "CANCELED":
            await self.repo.mark_expired(payment_hash)

    # --- money in ---------------------------------------------------------------------------

    async def create_invoice(self, amount_msat: int, *, description: str | None = None,
                             description_hash: bytes | None = None,
                             expiry: int = 600) -> Invoice:
        """Add an invoice on the node and record it as open."""
        if amount_msat <= 0:
            raise WalletError("invoice amount must be at least 1 msat")
        # Our own preimage, so that a LUD-10 `aes` success action can be encrypted with it.
        preimage = secrets.token_bytes(32)
        body: dict[str, Any] = {"value_msat": str(amount_msat), "expiry": str(expiry),
                                "r_preimage": base64.b64encode(preimage).decode()}
        if description_hash is not None:
            body["description_hash"] = base64.b64encode(description_hash).decode()
        else:
            body["memo"] = description or ""
        added = await self._rest.post("/v1/invoices", body)
        payment_hash = _b64_hex(added.get("r_hash"))
        known = preimage.hex() if hashlib.sha256(preimage).hexdigest() == payment_hash else None
        return await record_invoice(
            self.repo, BACKEND, self.network, str(added.get("payment_request", "")), amount_msat,
            description=body.get("memo"), description_hash=description_hash,
            payment_hash=payment_hash, preimage=known)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus | None:
        """The stored state, refreshed from LND while the invoice is not paid."""
        return await refreshed_status(self.repo, BACKEND, payment_hash, self._lookup_invoice)

    # --- money out --------------------------------------------------------------------------

    async def pay(self, bolt11_invoice: str, *, max_fee_msat: int | None = None) -> PaymentResult:
        """Pay once. PENDING means LND has it in flight (or we lost track): look it up later."""
        return await self._payouts.pay(bolt11_invoice, max_fee_msat)

    async def payment_status(self, payment_hash: str) -> PaymentResult | None:
        """Stored outcome; a pending one is looked up on the node and recorded when final."""
        return await self._payouts.status(payment_hash)

    async def _send(self, invoice: str, payment_hash: str, amount: int,
                    max_fee_msat: int | None) -> PaymentResult:
        """`/v2/router/send`, followed for up to `pay_wait`; PENDING when the outcome is not
        known by then."""
        fee = self._max_fee_msat if max_fee_msat is None else max_fee_msat
        body = {"payment_request": invoice, "timeout_seconds": self._pay_timeout,
                "fee_limit_msat": str(fee), "no_inflight_updates": False}
        sent = False
        try:
            async with asyncio.timeout(self._pay_wait):
                async with self._rest.stream("POST", "/v2/router/send", body=body) as updates:
                    async for update in updates:
                        sent = True
                        result = _payment(update, payment_hash, amount)
                        if result.status != PaymentStatus.PENDING:
                            return result
        except LndError as exc:
            if sent or "already" in exc.lnd_message or "in transition" in exc.lnd_message:
                try:  # the node has it: its view, never a second send
                    return await self._track(payment_hash, amount) or pending(payment_hash, amount)
                except WalletError:
                    return pending(payment_hash, amount)
            # Refused before any HTLC left: no money moved.
            return PaymentResult(payment_hash, PaymentStatus.FAILED, amount,
                                 failure_reason=exc.lnd_message)
        except TimeoutError:
            log.warning("lnd: payment %s… state unknown (timed out); will look it up",
                        payment_hash[:16])
        return pending(payment_hash, amount)

    async def _track(self, payment_hash: str, amount: int) -> PaymentResult | None:
        """LND's current view of a payment, or None if it never heard of it."""
        hash_b64 = base64.urlsafe_b64encode(bytes.fromhex(payment_hash)).decode()
        try:
            async with self._rest.stream("GET", f"/v2/router/track/{hash_b64}",
                                         params={"no_inflight_updates": "false"}) as updates:
                async for update in updates:
                    return _payment(update, payment_hash, amount)
        except LndError as exc:
            if exc.code == NOT_FOUND or "not initiated" in exc.lnd_message \
                    or "isn't initiated" in exc.lnd_message:
                return None
            raise
        return None

    async def balance(self) -> int:
        """Spendable: the local balance of our channels, in msat."""
        found = await self._rest.get("/v1/balance/channels")
        local = found.get("local_balance") or {}
        if local.get("msat") is not None:
            return int(local["msat"])
        return int(found.get("balance") or 0) * 1000

    async def info(self) -> WalletInfo:
        """Node identity; `reachable=False` (never an exception) when LND does not answer."""
        reachable = await answers(self._check_node)
        return WalletInfo(BACKEND, self.network, self._node_id, self._alias, reachable=reachable)


def _payment(update: dict[str, Any], payment_hash: str, amount: int) -> PaymentResult:
    """A routerrpc Payment as a PaymentResult."""
    status = {"SUCCEEDED": PaymentStatus.SUCCEEDED,
              "FAILED": PaymentStatus.FAILED}.get(str(update.get("status")), PaymentStatus.PENDING)
    reason = str(update.get("failure_reason") or "")
    return PaymentResult(
        payment_hash=str(update.get("payment_hash") or payment_hash), status=status,
        amount_msat=int(update.get("value_msat") or amount), fee_msat=int(update.get("fee_msat") or 0),
        preimage=(update.get("payment_preimage") or None) if status == PaymentStatus.SUCCEEDED
        else None,
        failure_reason=_FAILURES.get(reason, reason.lower() or "failed")
        if status == PaymentStatus.FAILED else None)

