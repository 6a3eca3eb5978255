"""The LND backend against a local fake LND speaking LND's REST shapes over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import bolt11
import pytest
import trustme

from strom.config import LndSettings
from strom.events import EventBus, InvoicePaid
from strom.lightning.lnd import LndWallet
from strom.lightning.wallet import (
    InvoiceState,
    PaymentStatus,
    WalletConfigError,
    WalletUnavailable,
)
from strom.store.db import Database
from tests.doubles.edges import make_invoice
from tests.doubles.fake_lnd import FakeLnd

FAST = {"backoff": (0.05, 0.2), "reconcile_interval": 0.2}
MakeWallet = Callable[..., LndWallet]


@pytest.fixture
async def fake() -> AsyncIterator[FakeLnd]:
    node = FakeLnd()
    await node.start()
    yield node
    await node.close()


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    events = EventBus()
    yield events
    await events.close()


@pytest.fixture
async def make_wallet(db: Database, bus: EventBus, fake: FakeLnd
                      ) -> AsyncIterator[MakeWallet]:
    made: list[LndWallet] = []

    def make(**overrides: object) -> LndWallet:
        settings = LndSettings(url=fake.url, macaroon_hex=fake.macaroon)
        options = {**FAST, **overrides}
        wallet = LndWallet(db, bus, settings, "regtest", **options)  # type: ignore[arg-type]
        made.append(wallet)
        return wallet

    yield make
    for wallet in made:
        await wallet.close()


async def started(wallet: LndWallet) -> LndWallet:
    await wallet.start()
    await asyncio.wait_for(wallet.connected.wait(), 5)
    return wallet


async def next_paid(queue: asyncio.Queue[InvoicePaid]) -> InvoicePaid:
    return await asyncio.wait_for(queue.get(), 5)


async def quiet(queue: asyncio.Queue[InvoicePaid], seconds: float = 0.5) -> list[InvoicePaid]:
    """Whatever else arrives within `seconds` (reconcile runs every 0.2 s meanwhile)."""
    await asyncio.sleep(seconds)
    found = []
    while not queue.empty():
        found.append(queue.get_nowait())
    return found


async def wait_for_cursor(db: Database, value: int) -> None:
    """The stream's settle_index is stored just after the payment it belongs to."""
    for _ in range(100):
        row = await db.fetchone("SELECT value FROM ln_cursors")
        if row is not None and row[0] == value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"settle_index {value} never stored")


async def test_invoice_has_amount_and_description_hash(make_wallet: MakeWallet,
                                                       fake: FakeLnd, db: Database) -> None:
    wallet = await started(make_wallet())
    digest = hashlib.sha256(b'[["text/plain","charge"]]').digest()
    invoice = await wallet.create_invoice(150_000, description_hash=digest, expiry=900)
    decoded = bolt11.decode(invoice.bolt11)
    assert decoded.amount_msat == 150_000
    assert decoded.description_hash == digest.hex()
    assert decoded.payment_hash == invoice.payment_hash
    assert decoded.payee == fake.key.public_key.format().hex()
    assert fake.invoices[invoice.payment_hash]["description_hash"] == digest
    row = await db.fetchone("SELECT * FROM ln_invoices WHERE payment_hash = ?",
                            (invoice.payment_hash,))
    assert row is not None and row["state"] == "open" and row["backend"] == "lnd"
    status = await wallet.invoice_status(invoice.payment_hash)
    assert status is not None and status.state == InvoiceState.OPEN


async def test_paid_invoice_published_once(make_wallet: MakeWallet, fake: FakeLnd,
                                           bus: EventBus) -> None:
    wallet = await started(make_wallet())
    invoice = await wallet.create_invoice(21_000, description="x")
    async with bus.listen(InvoicePaid) as queue:
        fake.settle(invoice.payment_hash, amt_paid_msat=22_000)  # payers may overpay
        event = await next_paid(queue)
        status = await wallet.invoice_status(invoice.payment_hash)  # looks up LND again
        assert await quiet(queue) == []
    assert event.payment_hash == invoice.payment_hash and event.amount_msat == 22_000
    assert hashlib.sha256(bytes.fromhex(event.preimage)).hexdigest() == invoice.payment_hash
    assert status is not None and status.state == InvoiceState.PAID
    assert status.amount_msat == 22_000 and status.preimage == event.preimage


async def test_payment_while_down_is_reconciled_once_after_restart(
        make_wallet: MakeWallet, fake: FakeLnd, bus: EventBus, db: Database) -> None:
    first = await started(make_wallet())
    early = await first.create_invoice(1_000, description="early")
    late = await first.create_invoice(2_000, description="late")
    lost = await first.create_invoice(3_000, description="lost")
    async with bus.listen(InvoicePaid) as queue:
        fake.settle(early.payment_hash)
        assert (await next_paid(queue)).payment_hash == early.payment_hash
        await wait_for_cursor(db, 1)
        await first.close()
        fake.settle(late.payment_hash)  # paid while strom is stopped
        fake.settle(lost.payment_hash)

        second = await started(make_wallet())
        found = [await next_paid(queue), await next_paid(queue)]
        found += await quiet(queue)
    assert sorted(e.payment_hash for e in found) == sorted([late.payment_hash, lost.payment_hash])
    # It resumed from the stored settle_index (so LND replays), and looked up open invoices.
    assert fake.subscribe_calls[-1] == {"settle_index": "1"}
    for invoice in (early, late, lost):
        status = await second.invoice_status(invoice.payment_hash)
        assert status is not None and status.state == InvoiceState.PAID


async def test_first_start_finds_payments_by_lookup(make_wallet: MakeWallet, fake: FakeLnd,
                                                    bus: EventBus) -> None:
    first = await started(make_wallet())
    invoice = await first.create_invoice(8_000, description="paid while away")
    await first.close()
    fake.settle(invoice.payment_hash)
    async with bus.listen(InvoicePaid) as queue:
        await started(make_wallet())
        event = await next_paid(queue)
        assert await quiet(queue) == []
    assert event.payment_hash == invoice.payment_hash
    # No settle_index was ever stored, so LND replayed nothing: the lookup found it.
    assert all("settle_index" not in call for call in fake.subscribe_calls)


async def test_reconnects_after_drop_and_logs_once(make_wallet: MakeWallet, fake: FakeLnd,
                                                   bus: EventBus,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    wallet = await started(make_wallet())
    invoice = await wallet.create_invoice(5_000, description="during outage")
    with caplog.at_level(logging.INFO, logger="strom.lightning.lnd"):
        async with bus.listen(InvoicePaid) as queue:
            await fake.drop()
            await asyncio.sleep(1.0)  # several retries at 0.05…0.2 s
            assert not wallet.connected.is_set()
            assert (await wallet.info()).reachable is False
            with pytest.raises(WalletUnavailable, match="cannot reach lnd"):
                await wallet.create_invoice(1_000, description="no")
            fake.settle(invoice.payment_hash)
            await fake.restart()
            event = await next_paid(queue)
            await asyncio.wait_for(wallet.connected.wait(), 5)
            assert await quiet(queue) == []
    assert event.payment_hash == invoice.payment_hash
    assert (await wallet.info()).reachable is True
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.message for r in warnings]
    assert any("reachable again" in r.message for r in caplog.records)
    assert len(fake.subscribe_calls) >= 2


async def test_survives_an_unreadable_update(make_wallet: MakeWallet, fake: FakeLnd,
                                             bus: EventBus,
                                             caplog: pytest.LogCaptureFixture) -> None:
    wallet = await started(make_wallet())
    invoice = await wallet.create_invoice(4_000, description="after the garbage")
    async with bus.listen(InvoicePaid) as queue:
        fake.send_raw({"result": {"state": "SETTLED", "r_hash": "", "settle_index": "x"}})
        await asyncio.sleep(0.3)
        fake.settle(invoice.payment_hash)
        event = await next_paid(queue)
    assert event.payment_hash == invoice.payment_hash
    assert any("following invoices failed" in r.message for r in caplog.records)
    assert len(fake.subscribe_calls) >= 2  # it reconnected


async def test_wrong_macaroon_is_unavailable(db: Database, bus: EventBus, fake: FakeLnd) -> None:
    wallet = LndWallet(db, bus, LndSettings(url=fake.url, macaroon_hex="00" * 32), "regtest",
                       **FAST)  # type: ignore[arg-type]
    try:
        await wallet.start()  # does not fail: it keeps trying in the background
        with pytest.raises(WalletUnavailable, match="refused our macaroon"):
            await wallet.create_invoice(1_000, description="x")
        assert (await wallet.info()).reachable is False
    finally:
        await wallet.close()


async def test_configuration_errors(db: Database, bus: EventBus, fake: FakeLnd,
                                    tmp_path: Path) -> None:
    cases = [
        (LndSettings(url=fake.url), "needs macaroon_hex or macaroon_path"),
        (LndSettings(url=fake.url, macaroon_path=str(tmp_path / "none")), "cannot read"),
        (LndSettings(url="http://10.1.2.3:8080", macaroon_hex="00"), "127.0.0.1 only"),
        (LndSettings(url="https://127.0.0.1:1", macaroon_hex="00",
                     tls_cert=str(tmp_path / "none.cert")), "tls_cert"),
    ]
    for settings, message in cases:
        with pytest.raises(WalletConfigError, match=message):
            await LndWallet(db, bus, settings, "regtest").start()
    macaroon_file = tmp_path / "admin.macaroon"
    macaroon_file.write_bytes(bytes.fromhex(fake.macaroon))
    from_file = LndWallet(db, bus, LndSettings(url=fake.url, macaroon_path=str(macaroon_file)),
                          "regtest")
    try:
        await from_file.start()
        assert (await from_file.info()).reachable is True
    finally:
        await from_file.close()
    testnet = FakeLnd(network="testnet")
    await testnet.start()
    try:
        with pytest.raises(WalletConfigError, match="is on testnet"):
            await LndWallet(db, bus, LndSettings(url=testnet.url, macaroon_hex=testnet.macaroon),
                            "regtest").start()
    finally:
        await testnet.close()


async def test_concurrent_payouts_send_once(make_wallet: MakeWallet, fake: FakeLnd,
                                            db: Database) -> None:
    wallet = await started(make_wallet())
    other = await started(make_wallet())  # a second wallet on the same store
    invoice = make_invoice(40_000)
    results = await asyncio.gather(wallet.pay(invoice), wallet.pay(invoice),
                                   wallet.pay(invoice, max_fee_msat=500))
    assert [r.status for r in results] == [PaymentStatus.SUCCEEDED] * 3
    assert len(fake.send_calls) == 1
    assert results[0].fee_msat == 1_000 and results[0].preimage
    again = await other.pay(invoice)
    assert again == results[0] and len(fake.send_calls) == 1
    assert await wallet.balance() == 50_000_000_000 - 41_000
    rows = await db.fetchall("SELECT status, fee_msat FROM ln_payments")
    assert [tuple(r) for r in rows] == [("succeeded", 1_000)]


async def test_failed_payout_may_be_retried(make_wallet: MakeWallet, fake: FakeLnd) -> None:
    wallet = await started(make_wallet())
    invoice = make_invoice(9_000)
    fake.pay_outcome = "FAILED"
    failed = await wallet.pay(invoice)
    assert failed.status == PaymentStatus.FAILED and failed.failure_reason == "no route to the payee"
    fake.pay_outcome = "SUCCEEDED"
    retried = await wallet.pay(invoice)
    assert retried.status == PaymentStatus.SUCCEEDED
    assert len(fake.send_calls) == 2
    wrong_net = await wallet.pay(make_invoice(1_000, currency="tb"))
    assert wrong_net.status == PaymentStatus.FAILED and "testnet" in (wrong_net.failure_reason or "")
    assert len(fake.send_calls) == 2  # refused before it reached the node


async def test_in_flight_payout_is_looked_up_not_resent(make_wallet: MakeWallet,
                                                        fake: FakeLnd) -> None:
    first = await started(make_wallet(pay_wait=0.3))
    invoice = make_invoice(12_000)
    fake.pay_outcome = "HANG"
    pending = await first.pay(invoice)
    assert pending.status == PaymentStatus.PENDING
    assert (await first.pay(invoice)).status == PaymentStatus.PENDING
    await first.close()
    assert len(fake.send_calls) == 1

    second = await started(make_wallet())
    fake.complete_payment(pending.payment_hash, "SUCCEEDED")
    looked_up = await second.payment_status(pending.payment_hash)
    assert looked_up is not None and looked_up.status == PaymentStatus.SUCCEEDED
    assert (await second.pay(invoice)).status == PaymentStatus.SUCCEEDED
    assert len(fake.send_calls) == 1


async def test_claimed_but_never_sent_is_failed_on_lookup(make_wallet: MakeWallet,
                                                          fake: FakeLnd) -> None:
    wallet = await started(make_wallet())
    invoice = make_invoice(3_000)
    decoded = bolt11.decode(invoice)
    # As if strom stopped between claiming the payment and sending it.
    await wallet.repo.claim_payment(payment_hash=decoded.payment_hash, backend="lnd",
                                    bolt11=invoice, amount_msat=3_000)
    status = await wallet.payment_status(decoded.payment_hash)
    assert status is not None and status.status == PaymentStatus.FAILED
    assert status.failure_reason == "the payment never reached lnd"
    assert (await wallet.pay(invoice)).status == PaymentStatus.SUCCEEDED
    assert fake.send_calls == [decoded.payment_hash]


async def test_tls_with_the_nodes_certificate(db: Database, bus: EventBus, tmp_path: Path) -> None:
    # LND signs its own certificate; strom trusts exactly that one (tls_cert).
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    node_cert, node_key, other = tmp_path / "tls.cert", tmp_path / "tls.key", tmp_path / "x.cert"
    issued.private_key_pem.write_to_path(str(node_key))
    issued.cert_chain_pems[0].write_to_path(str(node_cert))
    ca.cert_pem.write_to_path(str(node_cert), append=True)
    trustme.CA().cert_pem.write_to_path(str(other))
    node = FakeLnd(tls=(str(node_cert), str(node_key)))
    await node.start()
    trusting = LndWallet(db, bus, LndSettings(url=node.url, macaroon_hex=node.macaroon,
                                              tls_cert=str(node_cert)), "regtest")
    stranger = LndWallet(db, bus, LndSettings(url=node.url, macaroon_hex=node.macaroon,
                                              tls_cert=str(other)), "regtest")
    try:
        assert node.url.startswith("https://")
        await trusting.start()
        invoice = await trusting.create_invoice(1_000, description="over tls")
        assert bolt11.decode(invoice.bolt11).amount_msat == 1_000
        await stranger.start()
        with pytest.raises(WalletUnavailable, match="cannot reach lnd"):
            await stranger.create_invoice(1_000, description="untrusted")
    finally:
        await trusting.close()
        await stranger.close()
        await node.close()
