"""Test doubles for the two edges of the session service: the charger and the wallet.

They stand in for the OCPP central system and a Lightning backend in service-level unit tests
(integration and e2e tests use the real ones). Invoices are real signed BOLT11 strings.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import bolt11
from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags
from coincurve import PrivateKey

from strom.chargers.control import ControlResult, Outcome, StillWanted, Trigger, not_connected
from strom.lightning.wallet import (
    Invoice,
    InvoiceState,
    InvoiceStatus,
    PaymentResult,
    PaymentStatus,
    Wallet,
    WalletInfo,
)


def make_invoice(amount_msat: int, *, key: PrivateKey | None = None, expiry: int = 3600,
                 currency: str = "bcrt", description: str = "test",
                 description_hash: bytes | None = None, payment_hash: str | None = None,
                 created: int | None = None) -> str:
    """A real, signed BOLT11 invoice."""
    tags = [Tag(TagChar.payment_hash, payment_hash or secrets.token_hex(32)),
            Tag(TagChar.payment_secret, secrets.token_hex(32)),
            Tag(TagChar.expire_time, expiry)]
    if description_hash is not None:
        tags.append(Tag(TagChar.description_hash, description_hash.hex()))
    else:
        tags.append(Tag(TagChar.description, description))
    invoice = Bolt11(currency=currency, date=created or int(time.time()), amount_msat=MilliSatoshi(amount_msat),
                     tags=Tags(tags))
    return bolt11.encode(invoice, (key or PrivateKey()).secret.hex())


@dataclass
class FakeChargers:
    """`ChargerControl` for the session service: records what it was asked."""

    connected: bool = True
    accept_start: bool = True
    starts: list[tuple[str, int, str]] = field(default_factory=list)
    accept_stop: bool = True
    stops: list[tuple[str, int]] = field(default_factory=list)
    triggers: list[tuple[str, int]] = field(default_factory=list)
    status_triggers: list[tuple[str, int]] = field(default_factory=list)

    def is_connected(self, cp_id: str) -> bool:
        return self.connected

    def _answer(self, cp_id: str, yes: bool = True) -> ControlResult:
        if not self.connected:
            return not_connected(cp_id)
        return ControlResult(Outcome.ACCEPTED, "Accepted") if yes else \
            ControlResult(Outcome.REJECTED, "Rejected", f"{cp_id} said no")

    async def start(self, cp_id: str, connector_id: int, id_tag: str, *,
                    still_wanted: StillWanted | None = None) -> ControlResult:
        # No call queue here: a start's turn is at once, so `still_wanted` is not asked.
        self.starts.append((cp_id, connector_id, id_tag))
        return ControlResult(Outcome.ACCEPTED if self.accept_start else Outcome.REJECTED)

    async def stop(self, cp_id: str, transaction_id: int) -> ControlResult:
        self.stops.append((cp_id, transaction_id))
        return self._answer(cp_id, self.accept_stop)

    async def trigger(self, cp_id: str, message: Trigger,
                      connector_id: int | None = None) -> ControlResult:
        assert connector_id is not None
        asked = self.triggers if message == Trigger.METER_VALUES else self.status_triggers
        asked.append((cp_id, connector_id))
        return self._answer(cp_id)


class FakeWallet(Wallet):
    def __init__(self) -> None:
        self.key = PrivateKey()
        self.invoices: dict[str, InvoiceStatus] = {}
        self.pay_calls: list[str] = []
        self.pay_outcome = PaymentStatus.SUCCEEDED
        self.pay_delay = 0.0
        self.payments: dict[str, PaymentResult] = {}

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create_invoice(self, amount_msat: int, *, description: str | None = None,
                             description_hash: bytes | None = None, expiry: int = 600) -> Invoice:
        payment_hash = secrets.token_hex(32)
        bolt = make_invoice(amount_msat, key=self.key, expiry=expiry,
                            description_hash=description_hash, payment_hash=payment_hash)
        self.invoices[payment_hash] = InvoiceStatus(payment_hash, InvoiceState.OPEN, amount_msat)
        return Invoice(bolt, payment_hash, amount_msat,
                       datetime.now(UTC) + timedelta(seconds=expiry))

    def settle(self, payment_hash: str) -> None:
        status = self.invoices[payment_hash]
        self.invoices[payment_hash] = InvoiceStatus(
            payment_hash, InvoiceState.PAID, status.amount_msat, "00" * 32, datetime.now(UTC))

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus | None:
        return self.invoices.get(payment_hash)

    async def pay(self, bolt11_invoice: str, *, max_fee_msat: int | None = None) -> PaymentResult:
        decoded = bolt11.decode(bolt11_invoice)
        self.pay_calls.append(decoded.payment_hash)
        await asyncio.sleep(self.pay_delay)
        result = PaymentResult(decoded.payment_hash, self.pay_outcome, int(decoded.amount_msat),
                               failure_reason="no route" if self.pay_outcome == "failed" else None)
        self.payments[decoded.payment_hash] = result
        return result

    async def payment_status(self, payment_hash: str) -> PaymentResult | None:
        return self.payments.get(payment_hash)

    async def balance(self) -> int:
        return 0

    async def info(self) -> WalletInfo:
        return WalletInfo("fake", "regtest", self.key.public_key.format().hex())
