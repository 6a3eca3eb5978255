"""A hypothesis state machine of a misbehaving charger against the real SessionService.

The real session and refund services run over a real SQLite store; only the charger's side of
OCPP is a model (`FakeChargers` for the calls strom makes, service calls for the messages the
charger sends, queued while it is offline and delivered in order when it comes back). The
charger connects, drops, reconnects, accepts or rejects RemoteStop, starts late, unplugs and
meters; the driver pays, stops and withdraws; timeouts fire. After every step:

- the ledger check passes, and refunds never exceed paid − billed;
- once the charger's messages are all in, every transaction's delivered energy is the
  session's energy, and its cost is billed or reported as unbilled (only when the payment is
  used up);
- a session is settled on evidence: open at the charger ⇔ billed as running in strom;
- a driver's stop is never lost: one asked while starting holds the payment until the
  charger answers, and a session its driver stopped never charges.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from strom.chargers.control import ControlResult
from strom.config import SessionSettings
from strom.events import ChargePointConnected, EventBus, MeterSample, TransactionStarted
from strom.sessions.audit import check_ledger
from strom.sessions.lifecycle import SessionError, SessionService
from strom.sessions.model import METERED_STATES, REFUNDABLE_STATES, State
from strom.sessions.refunds import RefundService
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.transactions import TransactionRepository
from strom.tariffs.model import Tariff, cost_msat
from strom.timeutil import iso, utcnow
from tests.conftest import loopback_outbound
from tests.doubles.edges import FakeChargers, FakeWallet, make_invoice

CP = "cp-1"
TARIFF = Tariff(price_msat_per_kwh=300_000)


class ObedientChargers(FakeChargers):
    """Also remembers which transactions it agreed to stop."""

    def __init__(self) -> None:
        super().__init__()
        self.agreed: set[int] = set()

    async def stop(self, cp_id: str, transaction_id: int) -> ControlResult:
        result = await super().stop(cp_id, transaction_id)
        if result.ok:
            self.agreed.add(transaction_id)
        return result


@dataclass
class Tx:
    id: int
    id_tag: str
    register_wh: float = 0.0


class ChargerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.outbox: list[Callable[[], Awaitable[object]]] = []
        self.tx: Tx | None = None
        self.closed: dict[int, Tx] = {}  # transactions the charger has stopped
        self.started_tags: set[str] = set()
        self.driver_stopped: set[str] = set()
        self.run(self._setup())

    def run(self, coro: Awaitable[object]) -> object:
        result = self.loop.run_until_complete(coro)
        # Let the service's own tasks (starts, RemoteStop loops) take their next step.
        self.loop.run_until_complete(asyncio.sleep(0.005))
        return result

    async def _setup(self) -> None:
        self.db = await Database.open(Path(self.tmp.name) / "m.sqlite3")
        self.bus = EventBus()
        self.cps = ChargePointRepository(self.db)
        await self.cps.add(CP, name="One", lat=52.5, lon=13.4, num_connectors=1)
        await self.cps.set_connected(CP, True)
        await self.cps.set_connector_status(CP, 1, "Available")
        self.txs = TransactionRepository(self.db)
        self.chargers = ObedientChargers()
        self.wallet = FakeWallet()
        conf = SessionSettings(start_timeout=3600, stop_timeout=3600, safety_margin_msat=0)
        self.sessions = SessionService(db=self.db, bus=self.bus, settings=conf,
                                       charge_points=self.cps, wallet=self.wallet,
                                       chargers=self.chargers, tick_seconds=3600)
        self.refunds = RefundService(db=self.db, bus=self.bus, wallet=self.wallet,
                                     sessions=self.sessions, settings=conf,
                                     network="regtest", max_fee_msat=1000,
                                     outbound=loopback_outbound())
        await self.sessions.start()

    def teardown(self) -> None:
        async def close() -> None:
            await self.refunds.close()
            await self.sessions.close()
            await self.bus.close()
            await self.db.close()
        self.loop.run_until_complete(close())
        self.loop.close()
        self.tmp.cleanup()

    # --- the charger's messages: sent now, or queued while offline -------------------------

    def send(self, message: Callable[[], Awaitable[object]]) -> None:
        if self.chargers.connected:
            self.run(message())
        else:
            self.outbox.append(message)

    def status(self, status: str) -> None:
        async def go() -> None:
            await self.cps.set_connector_status(CP, 1, status)
            await self.sessions.on_connector_status(CP, 1, status)
        self.send(go)

    def sessions_now(self) -> list:  # type: ignore[type-arg]
        return self.run(self.sessions.repo.list(limit=100))  # type: ignore[return-value]

    def pick(self, index: int):  # type: ignore[no-untyped-def]
        found = self.sessions_now()
        return found[index % len(found)] if found else None

    # --- the driver --------------------------------------------------------------------------

    @precondition(lambda self: len(self.sessions_now()) < 4)
    @rule(amount_sat=st.integers(100, 3000))
    def pay(self, amount_sat: int) -> None:
        async def go() -> None:
            cp = await self.cps.get(CP)
            assert cp is not None
            pending = await self.sessions.create_pending(cp, None, TARIFF, amount_sat * 1000,
                                                         description_hash=b"\0" * 32)
            self.wallet.settle(pending.payment_hash)
            await self.sessions.on_paid(pending.payment_hash, amount_sat * 1000)
        self.run(go())

    @rule(index=st.integers(0, 3))
    def driver_stops(self, index: int) -> None:
        session = self.pick(index)
        if session is not None:
            try:
                self.run(self.sessions.request_stop(session.id, "stopped by the driver"))
                self.driver_stopped.add(session.id)
            except SessionError:
                pass

    @rule(index=st.integers(0, 3))
    def stop_timeout_passes(self, index: int) -> None:
        session = self.pick(index)
        if session is not None:
            self.run(self.sessions.unconfirm(session.id, "no StopTransaction in time"))

    @rule(index=st.integers(0, 3))
    def start_timeout_passes(self, index: int) -> None:
        session = self.pick(index)
        if session is not None:
            self.run(self.sessions.fail(session.id, "charger did not start in time",
                                        only_if=(State.STARTING,)))

    @rule(index=st.integers(0, 3))
    def driver_withdraws(self, index: int) -> None:
        session = self.pick(index)
        if session is None or session.state not in REFUNDABLE_STATES \
                or session.refundable_msat <= 0:
            return

        async def go() -> None:
            k1 = await self.refunds.new_withdraw_link(session)
            await self.refunds.withdraw(session, k1, make_invoice(session.refundable_msat))
        self.run(go())

    @rule()
    def tick(self) -> None:
        self.run(self.sessions.tick_once())

    # --- the charger -------------------------------------------------------------------------

    @precondition(lambda self: self.tx is None)
    @rule()
    def charger_starts(self) -> None:
        """It starts what it was asked to start, however late (each idTag once)."""
        tag = next((t for _, _, t in self.chargers.starts if t not in self.started_tags), None)
        if tag is None:
            return
        self.started_tags.add(tag)
        started = utcnow()
        tx, _ = self.run(self.txs.start(CP, connector_id=1, id_tag=tag, meter_start_wh=0.0,
                                        started_at=iso(started), auth_status="Accepted"))  # type: ignore[misc]
        self.tx = Tx(tx.id, tag)
        self.send(lambda: self.sessions.on_transaction_started(
            TransactionStarted(CP, 1, tx.id, tag, 0.0, started)))
        self.status("Charging")

    @precondition(lambda self: self.tx is not None)
    @rule(wh=st.integers(1, 3000))
    def charger_delivers(self, wh: int) -> None:
        tx = self.tx
        assert tx is not None
        tx.register_wh += wh
        register = tx.register_wh
        self.send(lambda: self.sessions.on_meter(
            MeterSample(CP, 1, tx.id, utcnow(), energy_wh=register, power_w=11_000.0)))

    @precondition(lambda self: self.tx is not None)
    @rule(obey=st.booleans())
    def charger_stops(self, obey: bool) -> None:
        """Stops when it agreed to a RemoteStop (`obey`), or the driver unplugs (not obey)."""
        tx = self.tx
        assert tx is not None
        if obey and tx.id not in self.chargers.agreed:
            return
        self.tx = None
        self.closed[tx.id] = tx
        register = tx.register_wh

        async def go() -> None:
            await self.txs.stop(CP, tx.id, meter_stop_wh=register, stopped_at=iso(),
                                reason="Remote", id_tag=None)
            await self.sessions.on_transaction_stopped(CP, tx.id, register,
                                                       "Remote" if obey else "EVDisconnected")
        self.send(go)
        self.status("Available")

    @rule(accept=st.booleans())
    def charger_answers_remote_stop(self, accept: bool) -> None:
        self.chargers.accept_stop = accept

    @precondition(lambda self: self.chargers.connected)
    @rule()
    def network_drops(self) -> None:
        self.chargers.connected = False
        self.run(self.cps.set_connected(CP, False))

    @precondition(lambda self: not self.chargers.connected)
    @rule()
    def charger_reconnects(self) -> None:
        self.chargers.connected = True
        self.run(self.cps.set_connected(CP, True))
        self.bus.publish(ChargePointConnected(CP))
        while self.outbox:
            self.run(self.outbox.pop(0)())
        self.status("Charging" if self.tx is not None else "Available")

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        report = self.run(check_ledger(self.db))
        assert report.ok, report.problems  # type: ignore[attr-defined]
        for s in self.sessions_now():
            assert s.held_msat >= 0 and s.refundable_msat >= 0
            assert s.refunded_msat <= s.paid_msat - s.consumed_msat
            if s.unbilled_msat:
                assert s.consumed_msat == s.left_msat, "unbilled only when nothing is left"
            if s.id in self.driver_stopped and s.state != State.PENDING_PAYMENT:
                # A stop is never lost: while starting it is held (nothing refundable until
                # the charger answers), and a start after it is stopped, never charging.
                assert s.state != State.CHARGING, s
                if s.stop_requested:
                    assert s.state not in REFUNDABLE_STATES and s.refunded_msat == 0

    @invariant()
    def delivered_energy_is_billed_or_reported(self) -> None:
        if self.outbox:
            return  # strom has not heard everything yet
        by_tx = {s.transaction_id: s for s in self.sessions_now() if s.transaction_id}
        for tx in [*self.closed.values(), *([self.tx] if self.tx else [])]:
            session = by_tx.get(tx.id)
            assert session is not None, f"transaction {tx.id} not linked to its session"
            assert session.energy_wh == tx.register_wh
            owed = cost_msat(TARIFF, tx.register_wh, 0)
            assert session.consumed_msat + session.unbilled_msat >= owed
            running = tx is self.tx
            assert (session.state in METERED_STATES) == running, (session.state, running)


ChargerMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestChargerMachine = ChargerMachine.TestCase
