"""The embedded dev wallet: real signed BOLT11 invoices, no node, no real money.

Invoices are signed with a secp256k1 node key kept in `<data-dir>/dev-node.key` (mode 0600),
carry a payment secret and a description hash (or description), and decode with any BOLT11
library. Nobody can pay them over the network: `settle()` marks one paid, as if a payer had
(`strom wallet pay`, `POST /api/v1/dev/pay`). `pay()` records an outgoing payment as succeeded
without moving anything, once per payment hash.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from coincurve import PrivateKey

from strom.events import EventBus
from strom.lightning.payout import Payouts
from strom.lightning.shared import (
    CURRENCY,
    decode_invoice,
    invoice_status,
    normalized,
    record_paid,
)
from strom.lightning.signing import InvoiceSigner, signed
from strom.lightning.wallet import (
    Invoice,
    InvoiceStatus,
    PaymentResult,
    PaymentStatus,
    Wallet,
    WalletConfigError,
    WalletError,
    WalletInfo,
)
from strom.security import write_secret_file
from strom.store.db import Database
from strom.store.lightning import LightningRepository
from strom.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

BACKEND = "dev"
KEY_FILE = "dev-node.key"


def load_or_create_node_key(path: Path) -> PrivateKey:
    """The node key in `path`, created (mode 0600) on first use; safe against a racing process."""
    if not path.exists():
        key = PrivateKey()
        staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        write_secret_file(staging, key.secret.hex() + "\n")
        try:
            # link() creates the name only if it does not exist: the first process wins.
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink(missing_ok=True)
    text = path.read_text(encoding="utf-8").strip()
    try:
        return PrivateKey(bytes.fromhex(text))
    except ValueError:
        raise WalletConfigError(f"{path} does not hold a node key (64 hex digits); "
                                "move it away and a new one is made") from None


class DevWallet(Wallet):
    """`DevWallet(db, bus, data_dir, network="regtest")`; refuses mainnet. Invoices are
    signed in worker processes (strom/lightning/signing.py; `signing_workers`, default one
    per core, 0: on the loop)."""

    def __init__(self, db: Database, bus: EventBus, data_dir: Path,
                 network: str = "regtest", signing_workers: int | None = None) -> None:
        if network == "mainnet":
            raise WalletConfigError("the dev wallet cannot run on mainnet: it is not real money;"
                                    " set [lightning] backend = \"lnd\" for mainnet")
        if network not in CURRENCY:
            raise WalletConfigError(f"unknown network {network!r}; use one of {sorted(CURRENCY)}")
        self.network = network
        self.repo = LightningRepository(db)
        self._bus = bus
        self._signer = InvoiceSigner(signing_workers)
        self._key_path = data_dir / KEY_FILE
        self._key: PrivateKey | None = None
        self._payer_key = PrivateKey()  # the demo driver's wallet (payer_invoice)
        self._payouts = Payouts(self.repo, BACKEND, network, send=self._send, lookup=self._lookup,
                                never_reached="the payment was never recorded")

    async def _node_key(self) -> PrivateKey:
        if self._key is None:
            self._key = await asyncio.to_thread(load_or_create_node_key, self._key_path)
        return self._key

    async def start(self) -> None:
        """Load the node key and expire overdue invoices; warn that this is play money."""
        log.warning("DEV WALLET on %s: invoices are NOT REAL MONEY; nobody can pay them over "
                    "lightning (settle them with `strom wallet pay`)", self.network)
        await self._node_key()
        expired = await self.repo.expire_overdue(BACKEND, iso())
        if expired:
            log.info("dev wallet: %d open invoice(s) expired while strom was stopped", expired)

    async def close(self) -> None:
        """Stop the signing workers; every change is committed when its call returns."""
        await self._signer.close()

    async def create_invoice(self, amount_msat: int, *, description: str | None = None,
                             description_hash: bytes | None = None,
                             expiry: int = 600) -> Invoice:
        """A signed invoice for `amount_msat`, recorded as open."""
        if amount_msat <= 0:
            raise WalletError("invoice amount must be at least 1 msat")
        if expiry <= 0:
            raise WalletError("invoice expiry must be positive")
        if description_hash is not None and len(description_hash) != 32:
            raise WalletError("description hash must be 32 bytes (SHA-256)")
        preimage = secrets.token_bytes(32)
        created = int(time.time())
        encoded, payment_hash = await self._signer.sign(
            await self._node_key(), CURRENCY[self.network], amount_msat, preimage, created,
            expiry, description, description_hash)
        expires_at = datetime.fromtimestamp(created + expiry, tz=UTC)
        await self.repo.add_invoice(
            payment_hash=payment_hash, backend=BACKEND, bolt11=encoded, amount_msat=amount_msat,
            expires_at=iso(expires_at), description=description if description_hash is None
            else None, description_hash=description_hash.hex() if description_hash else None,
            preimage=preimage.hex())
        return Invoice(encoded, payment_hash, amount_msat, expires_at, preimage.hex())

    def payer_invoice(self, amount_msat: int, description: str) -> str:
        """An invoice from the demo driver's own wallet, for the demo refund button: signed
        with a key of its own and not recorded, so to this wallet it is foreign, like a
        driver's invoice in an LNURL-withdraw callback."""
        return signed(self._payer_key.secret, CURRENCY[self.network], amount_msat,
                      secrets.token_bytes(32), int(time.time()), 600, description, None)[0]

    async def owns(self, payment_hash: str) -> bool:
        """Whether this dev wallet issued the invoice with `payment_hash`."""
        stored = await self.repo.invoice(payment_hash)
        return stored is not None and stored.backend == BACKEND

    async def settle(self, invoice: str) -> InvoiceStatus:
        """Mark one of our open invoices paid, as if a payer had paid it; publishes InvoicePaid.

        Raises WalletError for an invoice that is not ours, already paid, or expired.
        """
        # An invoice this wallet issued is found by its exact string (indexed): no decode,
        # which is the bolt11 library's slow path (~10 ms). Any other string is decoded, so
        # its error says what is wrong with it.
        issued = normalized(invoice)
        stored = await self.repo.invoice_by_bolt11(issued)
        if stored is None:
            stored = await self.repo.invoice(decode_invoice(invoice).payment_hash)
        if stored is None or stored.backend != BACKEND:
            raise WalletError("this invoice was not issued by this strom's dev wallet")
        if stored.bolt11 != issued:
            raise WalletError("this invoice carries our payment hash but is not the one we issued")
        if stored.state == "paid":
            raise WalletError("invoice is already paid")
        if stored.state == "expired" or parse_iso(stored.expires_at) <= utcnow():
            await self.repo.mark_expired(stored.payment_hash)
            raise WalletError("invoice has expired")
        assert stored.preimage is not None
        paid = await record_paid(self.repo, self._bus, BACKEND, stored.payment_hash,
                                 stored.amount_msat, stored.preimage, utcnow())
        if paid is None:  # a concurrent settle won
            raise WalletError("invoice is already paid")
        return invoice_status(paid)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus | None:
        stored = await self.repo.invoice(payment_hash)
        if stored is None or stored.backend != BACKEND:
            return None
        if stored.state == "open" and parse_iso(stored.expires_at) <= utcnow():
            await self.repo.mark_expired(payment_hash)
            stored = await self.repo.invoice(payment_hash)
            assert stored is not None
        return invoice_status(stored)

    async def pay(self, bolt11_invoice: str, *, max_fee_msat: int | None = None) -> PaymentResult:
        """Record a payment of a foreign invoice as succeeded (fee 0), once per payment hash."""
        return await self._payouts.pay(bolt11_invoice)

    async def payment_status(self, payment_hash: str) -> PaymentResult | None:
        return await self._payouts.status(payment_hash)

    async def _send(self, invoice: str, payment_hash: str, amount: int,
                    max_fee_msat: int | None) -> PaymentResult:
        log.info("dev wallet: paid %d msat to %s… (simulated)", amount, payment_hash[:16])
        return PaymentResult(payment_hash, PaymentStatus.SUCCEEDED, amount)

    async def _lookup(self, payment_hash: str, amount: int) -> PaymentResult | None:
        """Sending cannot fail here and moves nothing, so a claimed (pending) payment is as good
        as paid: another wallet on this store, e.g. the CLI, is recording it right now. A
        failed one was never paid."""
        stored = await self.repo.payment(payment_hash)
        if stored is None or stored.status == "failed":
            return None
        return PaymentResult(payment_hash, PaymentStatus.SUCCEEDED, stored.amount_msat)

    async def balance(self) -> int:
        """Received − paid − fees, in msat (may go negative: the dev wallet never runs dry)."""
        received, paid, fees = await self.repo.totals(BACKEND)
        return received - paid - fees

    async def info(self) -> WalletInfo:
        key = await self._node_key()
        return WalletInfo(BACKEND, self.network, key.public_key.format().hex(),
                          alias="strom dev wallet (not real money)")
