"""The Nostr Wallet Connect (NIP-47) backend: any wallet that hands out a
`nostr+walletconnect://` URI (`[lightning.nwc] uri`).

Money in: `make_invoice` (with the description hash), recorded as open. When the wallet
service offers `payment_received` notifications they report payments at once; open invoices
are also looked up (`lookup_invoice`) on every (re)connect and every `reconcile_interval`,
or every `poll_interval` when the service sends no notifications, so a payment made while
strom or the relay was away is still seen. `InvoicePaid` is published by whoever turns the
stored invoice paid, which happens once.

Money out: `pay_invoice`, claimed in the store first. A payment whose fate is unknown (no
answer) stays pending and is looked up by payment hash; the hash is sent again only when the
service says it never heard of it, well after the attempt (NIP-47's lookup_invoice reports
outgoing payments too; relays do not keep requests, so a late one cannot arrive). NIP-47 has
no fee limit: the wallet service's own budget applies, and the fee it reports is recorded.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from nostr_sdk import TransactionState, TransactionType

from strom.config import NwcSettings
from strom.events import EventBus
from strom.lightning.nwc_client import NwcClient, NwcRefusal, parse_uri, payment_of, preimage_of
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
from strom.timeutil import parse_iso, utcnow

log = logging.getLogger(__name__)

BACKEND = "nwc"
_NETWORK_NAMES = {"bitcoin": "mainnet", "main": "mainnet", "testnet3": "testnet",
                  "testnet4": "testnet"}


class NwcWallet(Wallet):
    """`NwcWallet(db, bus, settings.lightning.nwc, network)`; reconnects on its own."""

    def __init__(self, db: Database, bus: EventBus, settings: NwcSettings, network: str, *,
                 request_timeout: float = 15.0, pay_timeout: float = 60.0,
                 poll_interval: float = 3.0, reconcile_interval: float = 60.0,
                 retry_interval: float = 5.0, backoff: tuple[float, float] = (0.5, 30.0),
                 expiry_grace: float = 600.0) -> None:
        uri = parse_uri(settings.uri)
        self.network = network
        self.repo = LightningRepository(db)
        self._bus = bus
        self._client = NwcClient(uri, request_timeout=request_timeout, pay_timeout=pay_timeout,
                                 retry_interval=retry_interval)
        self._reachability = Reachability(
            log, f"nwc: the wallet service {self._client.where} is reachable again")
        self._poll_interval = poll_interval
        self._reconcile_interval = reconcile_interval
        self._backoff = backoff
        self._expiry_grace = timedelta(seconds=expiry_grace)
        self._notifications = False
        self._node_id: str | None = None
        self._alias: str | None = None
        # Requests are not stored by relays: one the service has not seen this long after it
        # was sent never reached it, so no money moved.
        self._payouts = Payouts(
            self.repo, BACKEND, network, send=self._send, lookup=self._lookup_payment,
            never_reached="the payment never reached the wallet service",
            grace=timedelta(seconds=2 * pay_timeout + request_timeout))
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()  # set while the service answers (tests wait on it)

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Ask the wallet service who it is (if it answers), then follow it in the background."""
        self._client.open()
        try:
            await self._connect()
        except WalletUnavailable:
            pass  # already logged; the follower keeps trying
        self._task = asyncio.create_task(self._follow(), name="nwc:follow")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._payouts.drain()
        await self._client.close()

    async def _hello(self) -> None:
        """get_info: check the network; learn who the wallet is and whether it notifies."""
        try:
            info = await self._client.get_info()
        except WalletUnavailable as exc:
            self._reachability(False, str(exc))
            raise
        found = _NETWORK_NAMES.get(str(info.network or "").lower(), info.network)
        if found and found != self.network:
            raise WalletConfigError(f"the NWC wallet {self._client.where} is on {found} "
                                    f"but [lightning] network is {self.network}")
        self._node_id, self._alias = info.pubkey, info.alias
        self._notifications = "payment_received" in info.notifications
        self._reachability(True, "")

    async def _connect(self) -> None:
        """Hello, then (again, after a reconnect) subscribe to the service's notifications."""
        await self._hello()
        if self._notifications:
            await self._client.subscribe(self._on_notification)

    # --- following the wallet service -------------------------------------------------------

    async def _follow(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                await self._connect()
                await self.reconcile()  # whatever happened while we were not listening
                self.connected.set()
                delay = self._backoff[0]
                await self._watch()
            except WalletConfigError as exc:
                self._reachability(False, f"nwc: {exc}")
                delay = self._backoff[1]
            except WalletError as exc:
                self._reachability(False, str(exc))
            except Exception:
                # A bug or an answer we cannot read must not end the follower for good.
                log.exception("nwc: following the wallet service failed; retrying in %.1f s",
                              delay)
            finally:
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _watch(self) -> None:
        """Reconcile on schedule; return when the relay drops (notifications may be lost)."""
        interval = self._reconcile_interval if self._notifications else self._poll_interval
        tick = min(0.5, interval)
        due = asyncio.get_running_loop().time() + interval
        while True:
            await asyncio.sleep(tick)
            if not await self._client.relay_connected():
                raise WalletUnavailable(f"nwc: lost the relay of the wallet service "
                                        f"{self._client.where}")
            if asyncio.get_running_loop().time() >= due:
                await self.reconcile()
                due = asyncio.get_running_loop().time() + interval

    async def _on_notification(self, payload: dict[str, Any]) -> None:
        if payload.get("notification_type") != "payment_received":
            return
        body = payload.get("notification")
        if not isinstance(body, dict):
            return
        payment_hash = str(body.get("payment_hash") or "").lower()
        stored = await self.repo.invoice(payment_hash)
        if stored is None or stored.backend != BACKEND or stored.state == "paid":
            return
        amount = int(body.get("amount") or 0)
        if body.get("state", "settled") != "settled" or amount <= 0:
            await self._lookup_invoice(payment_hash)  # a hint only: ask the service itself
            return
        settled = int(body.get("settled_at") or 0)
        await self._settled(payment_hash, amount, preimage_of(payment_hash, body.get("preimage")),
                            datetime.fromtimestamp(settled, tz=UTC) if settled else utcnow())

    async def _settled(self, payment_hash: str, amount: int, preimage: str,
                       paid_at: datetime) -> None:
        await record_paid(self.repo, self._bus, BACKEND, payment_hash, amount, preimage, paid_at)

    async def reconcile(self) -> None:
        """Ask the wallet service about every open invoice and every payment of unknown outcome."""
        for stored in await self.repo.open_invoices(BACKEND):
            await self._lookup_invoice(stored.payment_hash, parse_iso(stored.expires_at))
        for payment in await self.repo.pending_payments(BACKEND):
            await self.payment_status(payment.payment_hash)

    async def _lookup_invoice(self, payment_hash: str, expires_at: datetime | None = None) -> None:
        found = await self._client.lookup(payment_hash)
        if found is None:
            await self.repo.mark_expired(payment_hash)  # the service forgot it: nobody pays it
            return
        state = found.state
        if (state == TransactionState.SETTLED or (state is None and found.settled_at)) \
                and found.amount > 0:
            settled = found.settled_at.as_secs() if found.settled_at else 0
            await self._settled(payment_hash, int(found.amount),
                                preimage_of(payment_hash, found.preimage),
                                datetime.fromtimestamp(settled, tz=UTC) if settled else utcnow())
        elif state in (TransactionState.EXPIRED, TransactionState.FAILED):
            await self.repo.mark_expired(payment_hash)
        elif expires_at is not None and utcnow() > expires_at + self._expiry_grace:
            # Some services never say "expired"; stop asking about a long-dead invoice.
            await self.repo.mark_expired(payment_hash)

    # --- money in ---------------------------------------------------------------------------

    async def create_invoice(self, amount_msat: int, *, description: str | None = None,
                             description_hash: bytes | None = None,
                             expiry: int = 600) -> Invoice:
        """make_invoice at the wallet service, checked and recorded as open."""
        if amount_msat <= 0:
            raise WalletError("invoice amount must be at least 1 msat")
        if description_hash is not None and len(description_hash) != 32:
            raise WalletError("description hash must be 32 bytes (SHA-256)")
        made = await self._client.make_invoice(
            amount_msat, description=None if description_hash else (description or ""),
            description_hash=description_hash.hex() if description_hash else None, expiry=expiry)
        return await record_invoice(
            self.repo, BACKEND, self.network, made.invoice, amount_msat,
            description=None if description_hash else description,
            description_hash=description_hash, payment_hash=made.payment_hash or None)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus | None:
        """The stored state, refreshed from the wallet service while the invoice is not paid."""
        return await refreshed_status(self.repo, BACKEND, payment_hash, self._lookup_invoice)

    # --- money out --------------------------------------------------------------------------

    async def pay(self, bolt11_invoice: str, *, max_fee_msat: int | None = None) -> PaymentResult:
        """Pay once. PENDING means the outcome is not known yet: look it up later.

        `max_fee_msat` cannot be passed on: NIP-47 leaves fees to the wallet service's budget.
        """
        return await self._payouts.pay(bolt11_invoice)

    async def payment_status(self, payment_hash: str) -> PaymentResult | None:
        """Stored outcome; a pending one is looked up at the service and recorded when final."""
        return await self._payouts.status(payment_hash)

    async def _send(self, invoice: str, payment_hash: str, amount: int,
                    max_fee_msat: int | None) -> PaymentResult:
        """pay_invoice; a WalletError (no answer) leaves the outcome unknown."""
        try:
            paid = await self._client.pay_invoice(invoice)
        except NwcRefusal as exc:
            # It said no; a service may also say no to a hash it paid before, so look once.
            try:
                known = await self._lookup_payment(payment_hash, amount)
            except WalletError:
                return pending(payment_hash, amount)
            if known is not None and known.status != PaymentStatus.FAILED:
                return known
            return PaymentResult(payment_hash, PaymentStatus.FAILED, amount,
                                 failure_reason=exc.reason)
        return PaymentResult(
            payment_hash, PaymentStatus.SUCCEEDED, amount, fee_msat=int(paid.fees_paid or 0),
            preimage=preimage_of(payment_hash, paid.preimage) or None)

    async def _lookup_payment(self, payment_hash: str, amount: int) -> PaymentResult | None:
        """The service's view of an outgoing payment, or None if it never heard of it."""
        found = await self._client.lookup(payment_hash)
        if found is None or found.transaction_type == TransactionType.INCOMING:
            return None
        return payment_of(found, payment_hash, amount)

    async def balance(self) -> int:
        """Spendable balance as the wallet service reports it, in msat."""
        return await self._client.get_balance()

    async def info(self) -> WalletInfo:
        """Who the wallet is; `reachable=False` (never an exception) when it does not answer."""
        reachable = await answers(self._hello)
        return WalletInfo(BACKEND, self.network, self._node_id, self._alias, reachable=reachable)
