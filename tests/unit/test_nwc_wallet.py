"""The NWC backend against a NIP-47 wallet service over the embedded relay (real websockets)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import bolt11
import nostr_sdk as ns
import pytest

from relay import Relay
from strom.config import NwcSettings, Settings
from strom.events import EventBus, InvoicePaid
from strom.lightning.factory import make_wallet
from strom.lightning.nwc import NwcWallet
from strom.lightning.wallet import (
    InvoiceState,
    PaymentStatus,
    WalletConfigError,
    WalletUnavailable,
)
from strom.store.db import Database
from tests.doubles.nwc_service import NwcService

FAST = {"request_timeout": 1.0, "pay_timeout": 2.0, "poll_interval": 0.2,
        "reconcile_interval": 0.5, "retry_interval": 0.3, "backoff": (0.05, 0.3)}
MakeWallet = Callable[..., NwcWallet]


class Relays:
    """The embedded relay, which a test may take down and bring back on the same port."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.relay = Relay(path, "127.0.0.1", 0)
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.relay = Relay(self.path, "127.0.0.1", self.port)
        await self.relay.start()
        self.port = self.relay.port

    async def stop(self) -> None:
        await self.relay.close()


@pytest.fixture
async def relays(tmp_path: Path) -> AsyncIterator[Relays]:
    ns.uniffi_set_event_loop(asyncio.get_running_loop())
    running = Relays(tmp_path / "r.sqlite3")
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def service(relays: Relays, request: pytest.FixtureRequest) -> AsyncIterator[NwcService]:
    options = getattr(request, "param", {})
    wallet_service = NwcService(relays.url, **options)
    await wallet_service.start()
    yield wallet_service
    wallet_service.finish_payments()
    await wallet_service.stop()


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    events = EventBus()
    yield events
    await events.close()


@pytest.fixture
async def make(db: Database, bus: EventBus, service: NwcService) -> AsyncIterator[MakeWallet]:
    made: list[NwcWallet] = []

    def build(uri: str | None = None, **overrides: object) -> NwcWallet:
        settings = NwcSettings(uri=service.uri() if uri is None else uri)
        wallet = NwcWallet(db, bus, settings, "regtest", **{**FAST, **overrides})  # type: ignore[arg-type]
        made.append(wallet)
        return wallet

    yield build
    for wallet in made:
        await wallet.close()


async def started(wallet: NwcWallet) -> NwcWallet:
    await wallet.start()
    await asyncio.wait_for(wallet.connected.wait(), 5)
    return wallet


async def next_paid(queue: asyncio.Queue[InvoicePaid]) -> InvoicePaid:
    return await asyncio.wait_for(queue.get(), 5)


async def quiet(queue: asyncio.Queue[InvoicePaid], seconds: float = 1.0) -> list[InvoicePaid]:
    """Whatever else arrives within `seconds` (several reconcile rounds meanwhile)."""
    await asyncio.sleep(seconds)
    found = []
    while not queue.empty():
        found.append(queue.get_nowait())
    return found


BOTH = {"encryption": "nip44_v2 nip04"}
NIP04 = {"encryption": "nip04"}


@pytest.mark.parametrize("service", [BOTH, NIP04], indirect=True, ids=["nip44", "nip04"])
async def test_invoice_has_amount_and_description_hash(make: MakeWallet, service: NwcService,
                                                       db: Database) -> None:
    wallet = await started(make())
    digest = hashlib.sha256(b'[["text/plain","charge"]]').digest()
    invoice = await wallet.create_invoice(150_000, description_hash=digest, expiry=900)
    decoded = bolt11.decode(invoice.bolt11)
    assert decoded.amount_msat == 150_000
    assert decoded.description_hash == digest.hex()
    assert decoded.payment_hash == invoice.payment_hash
    assert decoded.payee == service.node_key.public_key.format().hex()
    assert decoded.expiry == 900
    assert service.invoices[invoice.payment_hash]["description_hash"] == digest.hex()
    row = await db.fetchone("SELECT * FROM ln_invoices WHERE payment_hash = ?",
                            (invoice.payment_hash,))
    assert row is not None and row["state"] == "open" and row["backend"] == "nwc"
    status = await wallet.invoice_status(invoice.payment_hash)
    assert status is not None and status.state == InvoiceState.OPEN


@pytest.mark.parametrize("service", [BOTH, NIP04], indirect=True, ids=["nip44", "nip04"])
async def test_notification_publishes_paid_once(make: MakeWallet, service: NwcService,
                                                bus: EventBus) -> None:
    # Reconciling only once a minute: the notification alone must deliver the payment.
    wallet = await started(make(reconcile_interval=60.0))
    invoice = await wallet.create_invoice(21_000, description="x")
    async with bus.listen(InvoicePaid) as queue:
        await service.settle(invoice.payment_hash, amount_msat=22_000)  # payers may overpay
        event = await next_paid(queue)
        assert "lookup_invoice" not in service.requests
        status = await wallet.invoice_status(invoice.payment_hash)
        assert await quiet(queue) == []
    assert event.payment_hash == invoice.payment_hash and event.amount_msat == 22_000
    assert hashlib.sha256(bytes.fromhex(event.preimage)).hexdigest() == invoice.payment_hash
    assert status is not None and status.state == InvoiceState.PAID
    assert status.amount_msat == 22_000 and status.preimage == event.preimage


async def test_many_concurrent_invoices_fit_the_relays_subscription_limit(
        make: MakeWallet, service: NwcService) -> None:
    # Each request holds a subscription until answered; the relay allows 50 per connection.
    wallet = await started(make(request_timeout=10.0))
    invoices = await asyncio.gather(*[wallet.create_invoice(1_000 + i, description=f"n{i}")
                                      for i in range(80)])
    assert sorted(bolt11.decode(i.bolt11).amount_msat for i in invoices) == \
        [1_000 + i for i in range(80)]
    assert len(service.invoices) == 80


@pytest.mark.parametrize("service", [{"notifications": False}], indirect=True)
async def test_without_notifications_open_invoices_are_polled(make: MakeWallet,
                                                              service: NwcService,
                                                              bus: EventBus) -> None:
    wallet = await started(make())
    invoice = await wallet.create_invoice(3_000, description="polled")
    await asyncio.sleep(0.7)
    assert service.requests.count("lookup_invoice") >= 2  # it keeps asking every 0.2 s
    async with bus.listen(InvoicePaid) as queue:
        await service.settle(invoice.payment_hash)
        event = await next_paid(queue)
        assert await quiet(queue) == []
    assert event.payment_hash == invoice.payment_hash and event.amount_msat == 3_000


async def test_paid_while_stopped_is_reconciled_once_after_restart(
        make: MakeWallet, service: NwcService, bus: EventBus) -> None:
    first = await started(make(reconcile_interval=60.0))
    early = await first.create_invoice(1_000, description="early")
    late = await first.create_invoice(2_000, description="late")
    async with bus.listen(InvoicePaid) as queue:
        await service.settle(early.payment_hash)
        assert (await next_paid(queue)).payment_hash == early.payment_hash
        await first.close()
        await service.settle(late.payment_hash)  # its notification reaches nobody
        second = await started(make(reconcile_interval=60.0))
        found = [await next_paid(queue)] + await quiet(queue)
    assert [e.payment_hash for e in found] == [late.payment_hash]
    for invoice in (early, late):
        status = await second.invoice_status(invoice.payment_hash)
        assert status is not None and status.state == InvoiceState.PAID


async def test_reconnects_after_the_relay_drops_and_logs_once(
        make: MakeWallet, service: NwcService, relays: Relays, bus: EventBus,
        caplog: pytest.LogCaptureFixture) -> None:
    wallet = await started(make(reconcile_interval=60.0))
    invoice = await wallet.create_invoice(5_000, description="during outage")
    with caplog.at_level(logging.INFO, logger="strom.lightning"):
        async with bus.listen(InvoicePaid) as queue:
            await relays.stop()
            await asyncio.sleep(1.5)  # several retries
            assert not wallet.connected.is_set()
            assert (await wallet.info()).reachable is False
            with pytest.raises(WalletUnavailable, match="no answer to make_invoice"):
                await wallet.create_invoice(1_000, description="no")
            await service.settle(invoice.payment_hash)  # the notification is lost
            await relays.start()
            event = await next_paid(queue)
            await asyncio.wait_for(wallet.connected.wait(), 5)
            assert await quiet(queue) == []
            # Notifications flow again after the reconnect.
            again = await wallet.create_invoice(6_000, description="after")
            await service.settle(again.payment_hash)
            assert (await next_paid(queue)).payment_hash == again.payment_hash
    assert event.payment_hash == invoice.payment_hash
    assert (await wallet.info()).reachable is True
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and r.name.startswith("strom.lightning")]
    assert len(warnings) == 1, [r.message for r in warnings]
    assert any("reachable again" in r.message for r in caplog.records)


async def test_wallet_service_restart_is_caught_up(make: MakeWallet, service: NwcService,
                                                   bus: EventBus) -> None:
    wallet = await started(make())
    invoice = await wallet.create_invoice(7_000, description="service restart")
    async with bus.listen(InvoicePaid) as queue:
        await service.stop()
        await service.settle(invoice.payment_hash)  # paid at the node while the bridge was down
        await asyncio.sleep(1.5)
        assert not wallet.connected.is_set()
        await service.start()
        event = await next_paid(queue)
        assert await quiet(queue) == []
    assert event.payment_hash == invoice.payment_hash


async def test_payout_is_sent_once_when_called_twice_concurrently(
        make: MakeWallet, service: NwcService) -> None:
    wallet = await started(make())
    invoice = service.external_invoice(5_000)
    first, second = await asyncio.gather(wallet.pay(invoice), wallet.pay(invoice))
    payment_hash = bolt11.decode(invoice).payment_hash
    assert service.pay_calls == [payment_hash]
    for result in (first, second):
        assert result.status == PaymentStatus.SUCCEEDED and result.fee_msat == 1_000
        assert hashlib.sha256(bytes.fromhex(result.preimage or "")).hexdigest() == payment_hash
    again = await wallet.pay(invoice)
    assert again.status == PaymentStatus.SUCCEEDED and service.pay_calls == [payment_hash]


async def test_two_wallets_on_one_store_send_once(make: MakeWallet,
                                                  service: NwcService) -> None:
    one, two = await started(make()), await started(make())
    invoice = service.external_invoice(4_000)
    results = await asyncio.gather(one.pay(invoice), two.pay(invoice))
    payment_hash = bolt11.decode(invoice).payment_hash
    assert service.pay_calls == [payment_hash]
    assert {r.status for r in results} <= {PaymentStatus.SUCCEEDED, PaymentStatus.PENDING}
    assert PaymentStatus.SUCCEEDED in {r.status for r in results}
    status = await two.payment_status(payment_hash)
    assert status is not None and status.status == PaymentStatus.SUCCEEDED


async def test_unanswered_payment_is_looked_up_never_sent_again(
        make: MakeWallet, service: NwcService, db: Database) -> None:
    wallet = await started(make())
    service.pay_outcome = "hang"
    invoice = service.external_invoice(8_000)
    payment_hash = bolt11.decode(invoice).payment_hash
    result = await wallet.pay(invoice)  # no answer within pay_timeout
    assert result.status == PaymentStatus.PENDING
    assert (await wallet.pay(invoice)).status == PaymentStatus.PENDING  # still in flight
    service.finish_payments()
    await asyncio.sleep(0.2)
    status = await wallet.payment_status(payment_hash)
    assert status is not None and status.status == PaymentStatus.SUCCEEDED
    assert status.preimage == service.preimages[payment_hash]
    assert (await wallet.pay(invoice)).status == PaymentStatus.SUCCEEDED
    assert service.pay_calls == [payment_hash]
    row = await db.fetchone("SELECT status, fee_msat FROM ln_payments WHERE payment_hash = ?",
                            (payment_hash,))
    assert row is not None and tuple(row) == ("succeeded", 1_000)


async def test_payment_that_never_reached_the_service_is_failed_then_sent_once(
        make: MakeWallet, service: NwcService, db: Database) -> None:
    wallet = await started(make())
    invoice = service.external_invoice(9_000)
    payment_hash = bolt11.decode(invoice).payment_hash
    await service.stop()
    assert (await wallet.pay(invoice)).status == PaymentStatus.PENDING
    await service.start()
    await asyncio.wait_for(wallet.connected.wait(), 5)
    # Right after the attempt the service might still be about to record it: keep waiting.
    status = await wallet.payment_status(payment_hash)
    assert status is not None and status.status == PaymentStatus.PENDING
    await db.execute("UPDATE ln_payments SET updated_at = '2000-01-01T00:00:00.000Z'")
    status = await wallet.payment_status(payment_hash)
    assert status is not None and status.status == PaymentStatus.FAILED
    assert status.failure_reason == "the payment never reached the wallet service"
    assert service.pay_calls == []
    assert (await wallet.pay(invoice)).status == PaymentStatus.SUCCEEDED
    assert service.pay_calls == [payment_hash]


async def test_refused_payment_fails_and_may_be_retried(make: MakeWallet,
                                                        service: NwcService) -> None:
    wallet = await started(make())
    service.pay_outcome = "fail"
    invoice = service.external_invoice(2_000)
    failed = await wallet.pay(invoice)
    assert failed.status == PaymentStatus.FAILED
    assert failed.failure_reason == "no route to the payee"
    service.pay_outcome = "succeed"
    assert (await wallet.pay(invoice)).status == PaymentStatus.SUCCEEDED
    assert len(service.pay_calls) == 2


async def test_wrong_secret_is_a_clear_unavailable_error(
        make: MakeWallet, service: NwcService, caplog: pytest.LogCaptureFixture) -> None:
    stranger = ns.Keys.generate().secret_key().to_hex()
    with caplog.at_level(logging.DEBUG):
        wallet = make(service.uri(secret=stranger))
        await wallet.start()  # does not fail the whole server: it keeps retrying
        with pytest.raises(WalletUnavailable, match="does not know our key.*check the secret"):
            await wallet.create_invoice(1_000, description="x")
        assert (await wallet.info()).reachable is False
        await wallet.close()
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and r.name.startswith("strom.lightning")]
    assert len(warnings) == 1 and "does not know our key" in warnings[0].getMessage()
    assert all(stranger not in r.getMessage() for r in caplog.records)


async def test_silent_service_is_unavailable(make: MakeWallet, service: NwcService) -> None:
    service.ignore_requests = True
    wallet = make()
    await wallet.start()
    with pytest.raises(WalletUnavailable, match="no answer to get_balance .* within 1 s"):
        await wallet.balance()
    assert (await wallet.info()).reachable is False


async def test_bad_uri_and_other_network_are_config_errors(make: MakeWallet, service: NwcService,
                                                           relays: Relays) -> None:
    with pytest.raises(WalletConfigError, match="uri is not set"):
        make("")
    secret = service.connection.secret_key().to_hex()
    broken = service.uri().replace(f"secret={secret}", f"secret=zz{secret[2:]}")
    with pytest.raises(WalletConfigError, match="not a valid nostr\\+walletconnect") as caught:
        make(broken)
    assert secret[2:] not in str(caught.value)
    testnet = NwcService(relays.url, network="testnet")
    await testnet.start()
    try:
        with pytest.raises(WalletConfigError, match="is on testnet but .* network is regtest"):
            await make(testnet.uri()).start()
    finally:
        await testnet.stop()


async def test_balance_info_and_forgotten_invoices(make: MakeWallet,
                                                   service: NwcService) -> None:
    wallet = await started(make())
    assert await wallet.balance() == service.balance_msat
    info = await wallet.info()
    assert (info.backend, info.network, info.alias, info.reachable) == \
        ("nwc", "regtest", "test wallet", True)
    assert info.node_id == service.node_key.public_key.format().hex()
    invoice = await wallet.create_invoice(1_000, description="forgotten")
    del service.invoices[invoice.payment_hash]
    status = await wallet.invoice_status(invoice.payment_hash)
    assert status is not None and status.state == InvoiceState.EXPIRED


async def test_factory_builds_the_nwc_wallet(db: Database, bus: EventBus, service: NwcService,
                                             tmp_path: Path) -> None:
    def settings(uri: str) -> Settings:
        return Settings.model_validate({"lightning": {"backend": "nwc", "nwc": {"uri": uri}}})

    wallet = make_wallet(settings(service.uri()), tmp_path, db, bus)
    assert isinstance(wallet, NwcWallet) and wallet.network == "regtest"
    with pytest.raises(WalletConfigError, match=r"\[lightning.nwc\] uri is not set"):
        make_wallet(settings(""), tmp_path, db, bus)
