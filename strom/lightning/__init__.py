"""Lightning: one `Wallet` interface, several backends (dev, lnd, nwc)."""

from strom.lightning.wallet import (
    Invoice,
    InvoiceState,
    InvoiceStatus,
    PaymentResult,
    PaymentStatus,
    Wallet,
    WalletError,
    WalletInfo,
    WalletUnavailable,
)

__all__ = [
    "Invoice",
    "InvoiceState",
    "InvoiceStatus",
    "PaymentResult",
    "PaymentStatus",
    "Wallet",
    "WalletError",
    "WalletInfo",
    "WalletUnavailable",
]
