"""The payout rules (strom/lightning/payout.py), one suite for every backend: the dev wallet,
LND (tests/doubles/fake_lnd.py over real HTTP) and NWC (tests/doubles/nwc_service.py over the
embedded relay). Backend specifics stay in test_dev_wallet.py, test_lnd_wallet.py and
test_nwc_wallet.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import bolt11
import nostr_sdk as ns
import pytest

from strom.config import LndSettings, NwcSettings
from strom.events import EventBus
from strom.lightning.dev import DevWallet
from strom.lightning.lnd import LndWallet
from strom.lightning.nwc import NwcWallet
from strom.lightning.wallet import PaymentResult, PaymentStatus, Wallet, WalletError
from strom.store.db import Database
from strom.store.lightning import LightningRepository
from tests.doubles.edges import make_invoice
from tests.doubles.fake_lnd import FakeLnd
from tests.doubles.nwc_service import NwcService
from tests.unit.test_lnd_wallet import FAST as LND_FAST
from tests.unit.test_nwc_wallet import FAST as NWC_FAST
from tests.unit.test_nwc_wallet import Relays

ALL = ["dev", "lnd", "nwc"]
NODES = ["lnd", "nwc"]  # the dev wallet moves nothing: its sends cannot fail or hang


@dataclass
class Node:
    """One backend behind the `Wallet` interface, with the knobs of its test double."""

    name: str
    new_wallet: Callable[[], Awaitable[Wallet]]  # another wallet on the same store (a restart)
    invoice: Callable[[int], str]  # someone else's invoice, payable through this node
    sent: Callable[[str], int]  # how often a payment hash reached the node
    outcome: Callable[[str], None]  # "succeed", "fail" or "hang" for the next sends
    release: Callable[[str], None]  # let a hanging payment succeed
    unknown_claim: PaymentStatus  # what a claim the node never saw turns into, right away
    down: Callable[[], Awaitable[None]]  # the node goes away …
    up: Callable[[], Awaitable[None]]  # … and comes back
    wallets: list[Wallet] = field(default_factory=list)

    async def wallet(self) -> Wallet:
        made = await self.new_wallet()
        self.wallets.append(made)
        return made


class DevSends(logging.Handler):
    """The dev wallet's send is its "paid … (simulated)" line: count those per hash."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "(simulated)" in record.getMessage():
            self.lines.append(record.getMessage())

    def count(self, payment_hash: str) -> int:
        return sum(payment_hash[:16] in line for line in self.lines)


def _no_knob(_: str) -> None:
    raise AssertionError("the dev wallet has no node to steer")


async def _no_node() -> None:
    raise AssertionError("the dev wallet has no node to take down")


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    events = EventBus()
    yield events
    await events.close()


@pytest.fixture(params=ALL)
async def node(request: pytest.FixtureRequest, db: Database, bus: EventBus,
               tmp_path: Path) -> AsyncIterator[Node]:
    name = request.param
    if name == "dev":
        sends = DevSends()
        logger = logging.getLogger("strom.lightning.dev")
        logger.addHandler(sends)
        logger.setLevel(logging.INFO)

        async def dev() -> Wallet:
            wallet = DevWallet(db, bus, tmp_path / "data")
            await wallet.start()
            return wallet

        made = Node(name, dev, lambda amount: make_invoice(amount), sends.count, _no_knob,
                    _no_knob, PaymentStatus.SUCCEEDED, _no_node, _no_node)
        yield made
        logger.removeHandler(sends)
    elif name == "lnd":
        fake = FakeLnd()
        await fake.start()
        outcomes = {"succeed": "SUCCEEDED", "fail": "FAILED", "hang": "HANG"}

        async def lnd() -> Wallet:
            wallet = LndWallet(db, bus, LndSettings(url=fake.url, macaroon_hex=fake.macaroon),
                               "regtest", **{**LND_FAST, "pay_wait": 0.3})  # type: ignore[arg-type]
            await wallet.start()
            await asyncio.wait_for(wallet.connected.wait(), 5)
            return wallet

        def lnd_outcome(outcome: str) -> None:
            fake.pay_outcome = outcomes[outcome]

        made = Node(name, lnd, lambda amount: make_invoice(amount), fake.send_calls.count,
                    lnd_outcome, fake.complete_payment, PaymentStatus.FAILED, fake.drop,
                    fake.restart)
        yield made
        await _close(made)
        await fake.close()
    else:
        ns.uniffi_set_event_loop(asyncio.get_running_loop())
        relays = Relays(tmp_path / "r.sqlite3")
        await relays.start()
        service = NwcService(relays.url)
        await service.start()

        async def nwc() -> Wallet:
            wallet = NwcWallet(db, bus, NwcSettings(uri=service.uri()), "regtest",
                               **NWC_FAST)  # type: ignore[arg-type]
            await wallet.start()
            await asyncio.wait_for(wallet.connected.wait(), 5)
            return wallet

        def nwc_outcome(outcome: str) -> None:
            service.pay_outcome = outcome

        made = Node(name, nwc, service.external_invoice, service.pay_calls.count, nwc_outcome,
                    lambda _: service.finish_payments(), PaymentStatus.PENDING, service.stop,
                    service.start)
        yield made
        await _close(made)
        service.finish_payments()
        await service.stop()
        await relays.stop()


async def _close(node: Node) -> None:
    for wallet in node.wallets:
        await wallet.close()


def hash_of(invoice: str) -> str:
    return bolt11.decode(invoice).payment_hash


async def settled(wallet: Wallet, payment_hash: str) -> PaymentResult:
    """The payment's status once the node has finished it (looked up, never sent)."""
    for _ in range(50):
        status = await wallet.payment_status(payment_hash)
        assert status is not None
        if status.status != PaymentStatus.PENDING:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{payment_hash[:16]}… still pending")


async def in_flight(node: Node, amount_msat: int) -> tuple[Wallet, str, str]:
    """A wallet, an invoice and its hash, paid into a node that keeps it in flight."""
    wallet = await node.wallet()
    invoice = node.invoice(amount_msat)
    node.outcome("hang")
    assert (await wallet.pay(invoice)).status == PaymentStatus.PENDING
    return wallet, invoice, hash_of(invoice)


async def test_one_send_per_hash_under_concurrency(node: Node, db: Database) -> None:
    one, two = await node.wallet(), await node.wallet()  # two wallets on one store
    invoice = node.invoice(7_000)
    payment_hash = hash_of(invoice)
    results = await asyncio.gather(*(w.pay(invoice) for w in (one, two, one, two)))
    # The loser of the store's claim sees the winner's attempt in flight or finished.
    assert {r.status for r in results} <= {PaymentStatus.SUCCEEDED, PaymentStatus.PENDING}
    assert PaymentStatus.SUCCEEDED in {r.status for r in results}
    assert (await settled(two, payment_hash)).status == PaymentStatus.SUCCEEDED
    assert node.sent(payment_hash) == 1
    rows = await db.fetchall("SELECT status, attempts FROM ln_payments")
    assert [tuple(r) for r in rows] == [("succeeded", 1)]


async def test_already_paid_hash_is_not_sent_again(node: Node) -> None:
    wallet = await node.wallet()
    invoice = node.invoice(5_000)
    paid = await wallet.pay(invoice)
    assert paid.status == PaymentStatus.SUCCEEDED
    assert await wallet.pay(invoice) == paid
    assert await wallet.pay(invoice.upper()) == paid  # the same invoice, as a QR code writes it
    restarted = await node.wallet()
    assert await restarted.pay(invoice) == paid
    assert node.sent(paid.payment_hash) == 1


async def test_own_invoice_is_refused(node: Node) -> None:
    wallet = await node.wallet()
    ours = await wallet.create_invoice(3_000, description="a session of ours")
    refused = await wallet.pay(ours.bolt11)
    assert refused.status == PaymentStatus.FAILED
    assert refused.failure_reason == "this invoice was issued by this wallet; strom never pays itself"
    assert await wallet.payment_status(ours.payment_hash) == refused
    assert node.sent(ours.payment_hash) == 0


async def test_failed_attempt_on_record_may_be_retried(node: Node, db: Database) -> None:
    wallet = await node.wallet()
    invoice = node.invoice(4_000)
    payment_hash = hash_of(invoice)
    # What a failed attempt leaves (no money moved), wherever it came from.
    await LightningRepository(db).record_final(
        payment_hash=payment_hash, backend=node.name, bolt11=invoice, amount_msat=4_000,
        status="failed", failure_reason="no route to the payee")
    retried = await wallet.pay(invoice)
    assert retried.status == PaymentStatus.SUCCEEDED
    assert node.sent(payment_hash) == 1


async def test_claim_of_unknown_outcome_is_looked_up_never_sent(node: Node,
                                                               db: Database) -> None:
    wallet = await node.wallet()
    invoice = node.invoice(6_000)
    payment_hash = hash_of(invoice)
    # As if strom stopped between claiming the payment and hearing how it ended.
    await LightningRepository(db).claim_payment(
        payment_hash=payment_hash, backend=node.name, bolt11=invoice, amount_msat=6_000)
    looked_up = await wallet.pay(invoice)
    # The backend's grace decides when "never heard of it" means "never sent": LND registers
    # a payment before it answers (no grace), a NIP-47 request may still cross the relay, and
    # the dev wallet's claim is its payment.
    assert looked_up.status == node.unknown_claim
    assert node.sent(payment_hash) == 0


@pytest.mark.parametrize("node", NODES, indirect=True)
async def test_failure_is_recorded_and_may_be_retried(node: Node) -> None:
    wallet = await node.wallet()
    invoice = node.invoice(9_000)
    node.outcome("fail")
    failed = await wallet.pay(invoice)
    assert failed.status == PaymentStatus.FAILED and failed.failure_reason == "no route to the payee"
    assert await wallet.payment_status(failed.payment_hash) == failed
    node.outcome("succeed")
    retried = await wallet.pay(invoice)
    assert retried.status == PaymentStatus.SUCCEEDED
    assert node.sent(failed.payment_hash) == 2


@pytest.mark.parametrize("node", NODES, indirect=True)
async def test_unknown_outcome_is_pending_then_looked_up(node: Node) -> None:
    wallet, invoice, payment_hash = await in_flight(node, 12_000)
    assert (await wallet.pay(invoice)).status == PaymentStatus.PENDING  # still in flight
    restarted = await node.wallet()
    assert (await restarted.pay(invoice)).status == PaymentStatus.PENDING
    node.release(payment_hash)
    assert (await settled(restarted, payment_hash)).status == PaymentStatus.SUCCEEDED
    assert (await wallet.pay(invoice)).status == PaymentStatus.SUCCEEDED
    assert node.sent(payment_hash) == 1


@pytest.mark.parametrize("node", NODES, indirect=True)
async def test_node_that_cannot_be_asked_leaves_the_record(node: Node) -> None:
    wallet, invoice, payment_hash = await in_flight(node, 2_000)
    await node.down()
    try:
        again = await wallet.pay(invoice)  # an answer, not an exception: still pending
        assert again.status == PaymentStatus.PENDING and again.payment_hash == payment_hash
        with pytest.raises(WalletError):  # the reconcile loop hears that the node is away
            await wallet.payment_status(payment_hash)
    finally:
        await node.up()
    assert node.sent(payment_hash) == 1
