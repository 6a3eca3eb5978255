"""The `Wallet` interface: how strom takes and returns money, whatever node is behind it.

Sessions only ever see this interface. Paid invoices are published on the event bus as
`strom.events.InvoicePaid`, exactly once per payment hash (also across reconnects and restarts:
each backend reconciles its open invoices on start).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from datetime import datetime

from strom.errors import UserError


class WalletError(Exception):
    """A wallet operation failed; the message is fit for a log line and for a user."""


class WalletUnavailable(WalletError):
    """The backend cannot be reached or refuses our credentials right now."""


class WalletConfigError(WalletError, UserError):
    """The wallet's settings cannot work (e.g. the dev wallet on mainnet); the user must fix them."""


class PaymentStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Invoice:
    bolt11: str
    payment_hash: str
    amount_msat: int
    expires_at: datetime
    # Known when strom chose it (dev wallet, LND with r_preimage): LUD-10 `aes` needs it.
    preimage: str | None = None


class InvoiceState(enum.StrEnum):
    OPEN = "open"
    PAID = "paid"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class InvoiceStatus:
    payment_hash: str
    state: InvoiceState
    amount_msat: int
    preimage: str | None = None
    paid_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PaymentResult:
    payment_hash: str
    status: PaymentStatus
    amount_msat: int
    fee_msat: int = 0
    preimage: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class WalletInfo:
    backend: str
    network: str
    node_id: str | None
    alias: str | None = None
    reachable: bool = True


class Wallet(abc.ABC):
    """Every backend implements this; see strom/lightning/dev.py, lnd.py, nwc.py."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect, reconcile open invoices and begin publishing `InvoicePaid` events."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def create_invoice(self, amount_msat: int, *, description: str | None = None,
                             description_hash: bytes | None = None,
                             expiry: int = 600) -> Invoice: ...

    @abc.abstractmethod
    async def invoice_status(self, payment_hash: str) -> InvoiceStatus | None:
        """The backend's view of an invoice we created (for reconciliation after a restart)."""

    @abc.abstractmethod
    async def pay(self, bolt11: str, *, max_fee_msat: int | None = None) -> PaymentResult:
        """Pay once: the same invoice is never paid twice, however often this is called."""

    @abc.abstractmethod
    async def payment_status(self, payment_hash: str) -> PaymentResult | None:
        """Look up an outgoing payment (for in-flight refunds after a restart)."""

    @abc.abstractmethod
    async def balance(self) -> int:
        """Spendable balance in msat."""

    @abc.abstractmethod
    async def info(self) -> WalletInfo: ...
