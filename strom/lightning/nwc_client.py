"""NIP-47 (Nostr Wallet Connect) transport on nostr-sdk: requests, answers and notifications.

It knows the connection URI, encryption and the shapes of answers and errors, nothing about
the store. nostr-sdk's `NostrWalletConnect` sends the requests (kind 23194; NIP-44 when the wallet
service's info event offers `nip44_v2`, else NIP-04) and waits for the answer (kind 23195).
It reports every failure as one string: a wallet service's refusal ends in `[Code]` and
becomes `NwcRefusal`; no answer at all becomes `WalletUnavailable`. Notifications (kinds 23196
NIP-04 and 23197 NIP-44) are read from the same client, which the library does not expose.

The URI's secret is the key to the wallet: it never appears in a message or a log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from nostr_sdk import (
    ClientNotificationStream,
    Event,
    Filter,
    GetInfoResponse,
    Keys,
    Kind,
    LookupInvoiceRequest,
    LookupInvoiceResponse,
    MakeInvoiceRequest,
    MakeInvoiceResponse,
    NostrWalletConnect,
    NostrWalletConnectBuilder,
    NostrWalletConnectUri,
    PayInvoiceRequest,
    PayInvoiceResponse,
    RelayOptions,
    RelayStatus,
    ReqTarget,
    TransactionState,
    uniffi_set_event_loop,
)

from strom.lightning.wallet import (
    PaymentResult,
    PaymentStatus,
    WalletConfigError,
    WalletError,
    WalletUnavailable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
NOTIFY_NIP04, NOTIFY_NIP44 = 23196, 23197
SUBSCRIPTION = "strom-nwc-notifications"
# nostr-sdk renders a NIP-47 error response as "<message> [<ErrorCode variant>]".
_REFUSAL = re.compile(r"^(?P<message>.*) \[(?P<code>[A-Za-z]+)\]$", re.DOTALL)
_CODES = {"RateLimited": "RATE_LIMITED", "NotImplemented": "NOT_IMPLEMENTED",
          "InsufficientBalance": "INSUFFICIENT_BALANCE", "PaymentFailed": "PAYMENT_FAILED",
          "NotFound": "NOT_FOUND", "QuotaExceeded": "QUOTA_EXCEEDED", "Restricted": "RESTRICTED",
          "Unauthorized": "UNAUTHORIZED", "Internal": "INTERNAL", "Other": "OTHER"}
# Each request holds one REQ open on the relay until its answer; relays allow a connection
# 20-50 subscriptions (strfry 20, ours 50), and one more is the notifications'.
MAX_IN_FLIGHT = 16
_SILENT = ("response not received", "relay/s not specified", "not connected", "timeout",
           "rate-limited")
Notify = Callable[[dict[str, Any]], Awaitable[None]]


class NwcRefusal(WalletError):
    """The wallet service answered, and refused: `code` is the NIP-47 error code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"the NWC wallet service refused: {reason} ({code})")
        self.code = code
        self.reason = reason


def parse_uri(text: str) -> NostrWalletConnectUri:
    """The `[lightning.nwc] uri`, or WalletConfigError saying what is wrong (never echoing it)."""
    text = text.strip()
    if not text:
        raise WalletConfigError("[lightning.nwc] uri is not set: paste the "
                                "nostr+walletconnect:// URI your wallet shows for a new connection")
    try:
        return NostrWalletConnectUri.parse(text)
    except Exception:  # the binding raises one generic type
        raise WalletConfigError("[lightning.nwc] uri is not a valid nostr+walletconnect:// URI "
                                "(it needs the wallet's public key, relay=… and secret=…)") from None


def preimage_of(payment_hash: str, preimage: object) -> str:
    """`preimage` if it is the one of `payment_hash`, else "" (unknown: services may omit it)."""
    text = str(preimage or "").lower()
    try:
        if text and hashlib.sha256(bytes.fromhex(text)).hexdigest() == payment_hash:
            return text
    except ValueError:
        pass
    if text:
        log.warning("nwc: the wallet service sent a preimage that does not match %s…",
                    payment_hash[:16])
    return ""


def payment_of(found: LookupInvoiceResponse, payment_hash: str, amount: int) -> PaymentResult:
    """A NIP-47 outgoing transaction as a PaymentResult."""
    preimage = preimage_of(payment_hash, found.preimage) or None
    state = found.state
    if state is None:  # older services leave `state` out
        state = TransactionState.SETTLED if found.settled_at or preimage \
            else TransactionState.PENDING
    if state == TransactionState.SETTLED:
        return PaymentResult(payment_hash, PaymentStatus.SUCCEEDED, int(found.amount or amount),
                             fee_msat=int(found.fees_paid or 0), preimage=preimage)
    if state in (TransactionState.FAILED, TransactionState.EXPIRED):
        return PaymentResult(payment_hash, PaymentStatus.FAILED, amount,
                             failure_reason="the wallet service reports the payment failed")
    return PaymentResult(payment_hash, PaymentStatus.PENDING, amount)


class NwcClient:
    """One connection to one wallet service; `open()` inside the loop that will use it."""

    def __init__(self, uri: NostrWalletConnectUri, *, request_timeout: float = 15.0,
                 pay_timeout: float = 60.0, retry_interval: float = 5.0) -> None:
        self.uri = uri
        self.wallet_pubkey = uri.public_key()
        self.where = f"{self.wallet_pubkey.to_hex()[:16]}… on {', '.join(map(str, uri.relays()))}"
        self.request_timeout = request_timeout
        self.pay_timeout = pay_timeout
        self._retry_interval = retry_interval
        self._keys = Keys(uri.secret())
        self._nwc: NostrWalletConnect | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = False
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    def open(self) -> None:
        """Build the nostr-sdk client; it connects on the first request."""
        # Every binding coroutine and callback runs on this loop (stack notes).
        uniffi_set_event_loop(asyncio.get_running_loop())
        options = RelayOptions().retry_interval(timedelta(seconds=self._retry_interval))
        # The library's own wait is the longest one we allow; shorter calls are cut off here.
        self._nwc = (NostrWalletConnectBuilder(self.uri)
                     .timeout(timedelta(seconds=max(self.request_timeout, self.pay_timeout)))
                     .relay(options).build())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        self._subscribed = False
        if self._nwc is not None:
            await self._nwc.client().shutdown()
            self._nwc = None

    @property
    def _client(self) -> NostrWalletConnect:
        if self._nwc is None:
            raise WalletUnavailable("the NWC wallet is closed")
        return self._nwc

    async def _call(self, method: str, work: Callable[[], Awaitable[T]], within: float) -> T:
        """One request; refusals become NwcRefusal, silence WalletUnavailable."""
        try:
            async with self._slots:
                async with asyncio.timeout(within):
                    return await work()
        except TimeoutError:
            raise WalletUnavailable(f"no answer to {method} from the NWC wallet service "
                                    f"{self.where} within {within:g} s") from None
        except Exception as exc:  # the binding raises one generic type with a message
            raise self._error(method, str(exc)) from None

    def _error(self, method: str, text: str) -> WalletError:
        text = text.strip().strip("'\"")
        found = _REFUSAL.match(text)
        if found and found["code"] in _CODES:
            code, reason = _CODES[found["code"]], found["message"]
            if code == "UNAUTHORIZED":
                return WalletUnavailable(f"the NWC wallet service {self.where} does not know our "
                                         f"key ({reason}); check the secret in [lightning.nwc] uri")
            return NwcRefusal(code, reason)
        if any(hint in text.lower() for hint in _SILENT):
            return WalletUnavailable(f"no answer to {method} from the NWC wallet service "
                                     f"{self.where} ({text})")
        return WalletError(f"unreadable answer to {method} from the NWC wallet service: {text}")

    # --- NIP-47 methods ---------------------------------------------------------------------

    async def get_info(self) -> GetInfoResponse:
        return await self._call("get_info", self._client.get_info, self.request_timeout)

    async def get_balance(self) -> int:
        found = await self._call("get_balance", self._client.get_balance, self.request_timeout)
        return int(found.balance)

    async def make_invoice(self, amount_msat: int, *, description: str | None,
                           description_hash: str | None, expiry: int) -> MakeInvoiceResponse:
        request = MakeInvoiceRequest(amount=amount_msat, description=description,
                                     description_hash=description_hash, expiry=expiry)
        return await self._call("make_invoice", lambda: self._client.make_invoice(request),
                                self.request_timeout)

    async def lookup(self, payment_hash: str) -> LookupInvoiceResponse | None:
        """The service's record of an invoice or payment, or None when it has none."""
        request = LookupInvoiceRequest(payment_hash=payment_hash, invoice=None)
        try:
            return await self._call("lookup_invoice", lambda: self._client.lookup_invoice(request),
                                    self.request_timeout)
        except NwcRefusal as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise

    async def pay_invoice(self, invoice: str) -> PayInvoiceResponse:
        request = PayInvoiceRequest(id=None, invoice=invoice, amount=None)
        return await self._call("pay_invoice", lambda: self._client.pay_invoice(request),
                                self.pay_timeout)

    # --- relay state and notifications ------------------------------------------------------

    async def relay_connected(self) -> bool:
        """Whether any of the URI's relays is connected right now."""
        relays = await self._client.client().relays()
        return any(relay.status() == RelayStatus.CONNECTED for relay in relays.values())

    async def subscribe(self, on_notification: Notify) -> None:
        """Deliver the service's notifications to `on_notification` from now on.

        Call after a successful request (the library adds the relays on the first one). Once
        is enough: nostr-sdk sends the REQ again after every reconnect (measured).
        """
        if self._subscribed:
            return
        client = self._client.client()
        if self._listener is None:
            # The stream must exist before the subscription, or early events are missed.
            stream = client.notifications()
            self._listener = asyncio.create_task(self._listen(stream, on_notification),
                                                 name="nwc:notifications")
        wanted = (Filter().author(self.wallet_pubkey).pubkey(self._keys.public_key())
                  .kinds([Kind(NOTIFY_NIP04), Kind(NOTIFY_NIP44)]))
        try:
            await client.subscribe(ReqTarget.auto([wanted]), id=SUBSCRIPTION)
        except Exception as exc:  # no relay connected right now: the caller tries again
            raise self._error("subscribe", str(exc)) from None
        self._subscribed = True

    async def _listen(self, stream: ClientNotificationStream, on_notification: Notify) -> None:
        while True:
            note = await stream.next()
            if note is None:
                continue
            if note.is_shutdown():
                return
            if not note.is_new_event() or note.subscription_id != SUBSCRIPTION:
                continue
            payload = self._open(note.event)
            if payload is None:
                continue
            try:
                await on_notification(payload)
            except Exception:
                # One bad notification must not end the listener; polling catches up.
                log.exception("nwc: handling a notification failed")

    def _open(self, event: Event) -> dict[str, Any] | None:
        """The decrypted notification, or None for anything not from our wallet service."""
        kind = event.kind().as_u16()
        if event.author().to_hex() != self.wallet_pubkey.to_hex() or not event.verify():
            return None
        try:
            if kind == NOTIFY_NIP44:
                text = self._keys.nip44_decrypt(self.wallet_pubkey, event.content())
            else:
                text = self._keys.nip04_decrypt(self.wallet_pubkey, event.content())
            payload = json.loads(text)
        except Exception as exc:
            log.warning("nwc: ignoring a notification we cannot read (%s)", type(exc).__name__)
            return None
        return payload if isinstance(payload, dict) else None
