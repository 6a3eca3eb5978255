"""The session services over real SQLite with doubles at the OCPP and wallet edges: the harness
the session, refund, checkout and ledger tests share (its fixture `h` is in conftest)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from strom.config import SessionSettings
from strom.events import EventBus, TransactionStarted
from strom.sessions.lifecycle import SessionService
from strom.sessions.model import State
from strom.sessions.refunds import RefundService
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.tariffs.model import Tariff
from strom.timeutil import utcnow
from tests.conftest import loopback_outbound
from tests.doubles.edges import FakeChargers, FakeWallet
from tests.polling import eventually

TARIFF = Tariff(price_msat_per_kwh=300_000, session_fee_msat=10_000)


@dataclass
class Harness:
    db: Database
    bus: EventBus
    cps: ChargePointRepository
    chargers: FakeChargers
    wallet: FakeWallet
    sessions: SessionService
    refunds: RefundService

    async def paid_session(self, amount: int = 1_000_000, connector: int | None = None) -> str:
        cp = await self.cps.get("cp-1")
        assert cp is not None
        pending = await self.sessions.create_pending(cp, connector, TARIFF, amount,
                                                     description_hash=b"\0" * 32)
        self.wallet.settle(pending.payment_hash)
        await self.sessions.on_paid(pending.payment_hash, amount)
        return pending.session.id

    async def wait_state(self, session_id: str, *states: State) -> None:
        await eventually(lambda: self.sessions.repo.get(session_id),
                         lambda s: s is not None and s.state in states, seconds=5)

    async def charging_session(self, amount: int = 1_000_000) -> str:
        sid = await self.paid_session(amount)
        await self.wait_state(sid, State.STARTING)
        session = await self.sessions.repo.get(sid)
        assert session is not None
        await self.sessions.on_transaction_started(TransactionStarted(
            "cp-1", session.active_connector_id or 1, 42 + len(self.chargers.starts),
            session.id_tag, 1000.0, utcnow()))
        await self.wait_state(sid, State.CHARGING)
        return sid


@contextlib.asynccontextmanager
async def harness(db: Database, meter_interval: float = 60.0,
                  **settings: float) -> AsyncIterator[Harness]:
    """The real services over `db` with `settings` (short timeouts, no safety margin)."""
    bus = EventBus()
    cps = ChargePointRepository(db)
    if await cps.get("cp-1") is None:  # a second harness over one store is a restart
        await cps.add("cp-1", name="One", lat=52.5, lon=13.4, num_connectors=2)
    await cps.set_connected("cp-1", True)
    for n in (1, 2):
        await cps.set_connector_status("cp-1", n, "Available")
    chargers, wallet = FakeChargers(), FakeWallet()
    conf = SessionSettings(**{"start_timeout": 0.5, "stop_timeout": 0.3,
                              "safety_margin_msat": 0, **settings})
    sessions = SessionService(db=db, bus=bus, settings=conf, charge_points=cps, wallet=wallet,
                              chargers=chargers, meter_interval=meter_interval)
    refunds = RefundService(db=db, bus=bus, wallet=wallet, sessions=sessions, settings=conf,
                            network="regtest", max_fee_msat=1000, outbound=loopback_outbound())
    await sessions.start()
    yield Harness(db, bus, cps, chargers, wallet, sessions, refunds)
    await refunds.close()
    await sessions.close()
    await bus.close()
