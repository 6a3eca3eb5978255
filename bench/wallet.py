"""Wallet backends: invoices made per second (dev, fake LND over HTTP) and paid-to-event latency.

Baselines: for the dev wallet, signing alone (bolt11.encode, no store); for LND, the dev wallet.
The fake LND runs in the same process and loop, so its server cost is counted too.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import bolt11
from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags
from coincurve import PrivateKey

from bench.figures import Figure
from strom.config import LndSettings
from strom.events import EventBus, InvoicePaid
from strom.lightning.dev import DevWallet
from strom.lightning.lnd import LndWallet
from strom.store.db import Database
from tests.doubles.fake_lnd import FakeLnd

INVOICES = 400
SETTLES = 100


def signing_rate(count: int) -> float:
    """Invoices/s signed by bolt11.encode, the dev wallet's signer."""
    key = PrivateKey().secret.hex()
    started = time.perf_counter()
    for i in range(count):
        tags = Tags([Tag(TagChar.payment_hash, f"{i:064x}"), Tag(TagChar.payment_secret, "11" * 32),
                     Tag(TagChar.description_hash, "22" * 32), Tag(TagChar.expire_time, 600)])
        bolt11.encode(Bolt11(currency="bcrt", date=int(time.time()),
                             amount_msat=MilliSatoshi(21_000), tags=tags), key)
    return count / (time.perf_counter() - started)


async def _invoice_rate(wallet: DevWallet | LndWallet, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await wallet.create_invoice(21_000, description_hash=b"\x22" * 32)
    return count / (time.perf_counter() - started)


async def _paid_latency_ms(wallet: LndWallet, node: FakeLnd, bus: EventBus) -> float:
    """Median time from the node settling an invoice to InvoicePaid on strom's bus."""
    invoices = [await wallet.create_invoice(1_000, description="bench") for _ in range(SETTLES)]
    samples = []
    async with bus.listen(InvoicePaid) as queue:
        for invoice in invoices:
            started = time.perf_counter()
            node.settle(invoice.payment_hash)
            await asyncio.wait_for(queue.get(), 5)
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def run() -> list[Figure]:
    """Measure; each part is bounded to a few hundred calls on 127.0.0.1."""
    with tempfile.TemporaryDirectory(prefix="strom-bench-wallet-") as tmp:
        db = await Database.open(Path(tmp) / "bench.sqlite3")
        bus = EventBus()
        node = FakeLnd()
        await node.start()
        lnd = LndWallet(db, bus, LndSettings(url=node.url, macaroon_hex=node.macaroon),
                        "regtest")
        dev = DevWallet(db, bus, Path(tmp))
        try:
            await dev.start()
            signing = signing_rate(INVOICES)
            dev_rate = await _invoice_rate(dev, INVOICES)
            await lnd.start()
            await asyncio.wait_for(lnd.connected.wait(), 5)
            lnd_rate = await _invoice_rate(lnd, INVOICES)
            latency = await _paid_latency_ms(lnd, node, bus)
        finally:
            await dev.close()
            await lnd.close()
            await node.close()
            await bus.close()
            await db.close()
    return [
        Figure("wallet", "dev invoices created", dev_rate, "per s", signing,
               "baseline: bolt11.encode alone on the loop, no store (the dev wallet signs in a worker process)"),
        Figure("wallet", "fake-LND invoices created (REST)", lnd_rate, "per s", dev_rate,
               "baseline: dev wallet"),
        Figure("wallet", "fake-LND settle → InvoicePaid (median)", latency, "ms"),
    ]
