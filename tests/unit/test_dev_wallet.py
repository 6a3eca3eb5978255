"""The dev wallet: real signed regtest invoices, settle-once, pay-once, restarts, refusals."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import bolt11
import pytest
from coincurve import PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strom.config import Settings
from strom.events import EventBus, InvoicePaid
from strom.lightning.dev import KEY_FILE, DevWallet
from strom.lightning.factory import make_wallet
from strom.lightning.lnd import LndWallet
from strom.lightning.wallet import InvoiceState, PaymentStatus, WalletConfigError, WalletError
from strom.store.db import Database
from tests.doubles.edges import make_invoice


@pytest.fixture
async def bus() -> EventBus:
    return EventBus()


@pytest.fixture
async def wallet(db: Database, bus: EventBus, tmp_path: Path) -> AsyncIterator[DevWallet]:
    dev = DevWallet(db, bus, tmp_path / "data")
    await dev.start()
    yield dev
    await dev.close()


async def drain(queue: asyncio.Queue[InvoicePaid]) -> list[InvoicePaid]:
    await asyncio.sleep(0.05)  # let anything late arrive
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


async def test_invoice_is_real_signed_bolt11(wallet: DevWallet) -> None:
    metadata = '[["text/plain","Charge at demo-1"]]'
    digest = hashlib.sha256(metadata.encode()).digest()
    invoice = await wallet.create_invoice(21_000, description_hash=digest, expiry=300)
    decoded = bolt11.decode(invoice.bolt11)
    assert invoice.bolt11.startswith("lnbcrt210n1")
    assert decoded.currency == "bcrt"
    assert decoded.amount_msat == 21_000
    assert decoded.description_hash == digest.hex()
    assert decoded.payment_hash == invoice.payment_hash
    assert decoded.payment_secret and len(decoded.payment_secret) == 64
    assert decoded.expiry == 300
    assert decoded.payee == (await wallet.info()).node_id  # signed by the node key
    assert abs(invoice.expires_at.timestamp() - (decoded.date + 300)) < 1

    with_memo = bolt11.decode((await wallet.create_invoice(5_000, description="coffee")).bolt11)
    assert with_memo.description == "coffee"
    assert with_memo.description_hash is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.integers(1, 10**12), memo=st.text(max_size=60))
async def test_any_amount_and_memo_round_trip(wallet: DevWallet, amount: int, memo: str) -> None:
    invoice = await wallet.create_invoice(amount, description=memo)
    decoded = bolt11.decode(invoice.bolt11)
    assert decoded.amount_msat == amount
    assert decoded.description == memo


async def test_node_key_file_is_private_and_kept(db: Database, bus: EventBus, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = await DevWallet(db, bus, data).info()
    key_file = data / KEY_FILE
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert first.node_id not in key_file.read_text()  # the file holds the secret, not the id
    again = await DevWallet(db, bus, data).info()
    assert again.node_id == first.node_id

    key_file.write_text("not a key\n")
    with pytest.raises(WalletConfigError, match="does not hold a node key"):
        await DevWallet(db, bus, data).info()


async def test_refuses_mainnet_and_warns_loudly(db: Database, bus: EventBus, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(WalletError, match="mainnet"):
        DevWallet(db, bus, tmp_path, network="mainnet")
    with caplog.at_level(logging.WARNING, logger="strom.lightning.dev"):
        await DevWallet(db, bus, tmp_path, network="signet").start()
    assert any("NOT REAL MONEY" in r.message and r.levelno == logging.WARNING
               for r in caplog.records)


async def test_settle_publishes_once_even_when_raced(wallet: DevWallet, bus: EventBus) -> None:
    invoice = await wallet.create_invoice(42_000, description="x")
    async with bus.listen(InvoicePaid) as queue:
        outcomes = await asyncio.gather(*(wallet.settle(invoice.bolt11) for _ in range(5)),
                                        return_exceptions=True)
        events = await drain(queue)
    settled = [o for o in outcomes if not isinstance(o, Exception)]
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(settled) == 1 and len(errors) == 4
    assert all(isinstance(e, WalletError) and "already paid" in str(e) for e in errors)
    assert len(events) == 1
    event = events[0]
    assert event.payment_hash == invoice.payment_hash and event.amount_msat == 42_000
    assert hashlib.sha256(bytes.fromhex(event.preimage)).hexdigest() == invoice.payment_hash
    status = await wallet.invoice_status(invoice.payment_hash)
    assert status is not None and status.state == InvoiceState.PAID
    assert status.preimage == event.preimage
    assert await wallet.balance() == 42_000


async def test_settle_refuses_foreign_expired_and_forged(wallet: DevWallet) -> None:
    with pytest.raises(WalletError, match="not issued by this strom"):
        await wallet.settle(make_invoice(1_000))
    with pytest.raises(WalletError, match="not a valid BOLT11"):
        await wallet.settle("lnbcrt1garbage")
    short = await wallet.create_invoice(1_000, description="short", expiry=1)
    await asyncio.sleep(1.1)
    with pytest.raises(WalletError, match="expired"):
        await wallet.settle(short.bolt11)
    status = await wallet.invoice_status(short.payment_hash)
    assert status is not None and status.state == InvoiceState.EXPIRED
    # Same payment hash, signed by someone else: not the invoice we issued.
    ours = await wallet.create_invoice(2_000, description="ours")
    forged = make_invoice(2_000, payment_hash=ours.payment_hash)
    with pytest.raises(WalletError, match="not the one we issued"):
        await wallet.settle(forged)
    assert await wallet.balance() == 0


async def test_restart_keeps_state_and_does_not_republish(db: Database, tmp_path: Path) -> None:
    bus = EventBus()
    first = DevWallet(db, bus, tmp_path / "d")
    await first.start()
    paid = await first.create_invoice(10_000, description="a")
    still_open = await first.create_invoice(20_000, description="b")
    await first.settle(paid.bolt11)
    await first.close()

    async with bus.listen(InvoicePaid) as queue:
        second = DevWallet(db, bus, tmp_path / "d")
        await second.start()
        assert await drain(queue) == []  # nothing published again on start
        with pytest.raises(WalletError, match="already paid"):
            await second.settle(paid.bolt11)
        await second.settle(still_open.bolt11)
        events = await drain(queue)
    assert [e.payment_hash for e in events] == [still_open.payment_hash]
    assert await second.balance() == 30_000


async def test_pay_foreign_invoice_once_under_concurrency(db: Database, tmp_path: Path) -> None:
    bus = EventBus()
    # Two wallets on one store: like the CLI next to the server.
    one, two = DevWallet(db, bus, tmp_path / "d"), DevWallet(db, bus, tmp_path / "d")
    invoice = make_invoice(7_000, key=PrivateKey())
    results = await asyncio.gather(*(w.pay(invoice) for w in (one, two, one, two)))
    assert {r.status for r in results} == {PaymentStatus.SUCCEEDED}
    assert len({r.payment_hash for r in results}) == 1
    rows = await db.fetchall("SELECT * FROM ln_payments")
    assert len(rows) == 1 and rows[0]["attempts"] == 1
    assert await one.balance() == -7_000  # received − paid − fees
    status = await two.payment_status(results[0].payment_hash)
    assert status is not None and status.status == PaymentStatus.SUCCEEDED


async def test_pay_refusals_are_recorded_failures(wallet: DevWallet) -> None:
    mainnet = await wallet.pay(make_invoice(1_000, currency="bc"))
    assert mainnet.status == PaymentStatus.FAILED
    assert mainnet.failure_reason == "invoice is for mainnet, this wallet is on regtest"
    looked_up = await wallet.payment_status(mainnet.payment_hash)
    assert looked_up == mainnet

    expired = await wallet.pay(make_invoice(1_000, expiry=1, created=1_700_000_000))
    assert expired.status == PaymentStatus.FAILED and expired.failure_reason == "invoice has expired"

    ours = await wallet.create_invoice(3_000, description="self")
    self_pay = await wallet.pay(ours.bolt11)
    assert self_pay.status == PaymentStatus.FAILED and "never pays itself" in (self_pay.failure_reason or "")

    with pytest.raises(WalletError, match="not a valid BOLT11"):
        await wallet.pay("hello")
    assert await wallet.balance() == 0  # failures cost nothing


async def test_factory_picks_the_configured_backend(db: Database, bus: EventBus,
                                                    tmp_path: Path) -> None:
    def settings(**lightning: object) -> Settings:
        return Settings.model_validate({"lightning": lightning})

    assert isinstance(make_wallet(settings(), tmp_path, db, bus), DevWallet)
    lnd = make_wallet(settings(backend="lnd", network="mainnet"), tmp_path, db, bus)
    assert isinstance(lnd, LndWallet) and lnd.network == "mainnet"
    with pytest.raises(WalletConfigError, match=r"\[lightning.nwc\] uri is not set"):
        make_wallet(settings(backend="nwc"), tmp_path, db, bus)
    with pytest.raises(WalletConfigError, match="mainnet"):
        make_wallet(settings(network="mainnet"), tmp_path, db, bus)
