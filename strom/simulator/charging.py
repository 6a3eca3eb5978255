"""What happens at the connectors: cable, transactions, metering, availability.

It runs whether or not the charge point is connected: a car keeps charging while the
network is down, and the transaction messages wait in the outbox.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Coroutine
from typing import Any

from ocpp.v16 import call
from ocpp.v16.enums import ReadingContext, Reason

from strom.simulator.battery import random_vehicle
from strom.simulator.call_queue import CallQueue, Offline
from strom.simulator.config_keys import KeyStore
from strom.simulator.connector import (
    AVAILABLE,
    CHARGING,
    PREPARING,
    SUSPENDED_EV,
    UNAVAILABLE,
    Connector,
    Transaction,
    meter_sample,
    meter_values,
    start_transaction,
    status_notification,
    stop_transaction,
)
from strom.timeutil import iso

Emit = Callable[[str, str], None]
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class Charging:
    """The connectors of one charge point and the transactions on them."""

    def __init__(self, *, connectors: int, outbox: CallQueue, config: KeyStore,
                 rng: random.Random, speed: float, max_power_w: float, finish_delay: float,
                 battery_wh: float | None, start_soc: float | None,
                 emit: Emit, touch: Callable[[], None], spawn: Spawn) -> None:
        # A meter that has seen some use: registers do not start at zero on a real charger.
        self.connectors = {n: Connector(n, register_wh=float(rng.randrange(100_000, 5_000_000)))
                           for n in range(1, connectors + 1)}
        self.operative = True
        self._outbox, self._config, self._rng = outbox, config, rng
        self._speed, self._max_power_w, self._finish_delay = speed, max_power_w, finish_delay
        self._battery_wh, self._start_soc = battery_wh, start_soc
        self._emit, self._touch, self._spawn = emit, touch, spawn

    # --- remote start and stop -------------------------------------------------------------

    def reserve(self, connector_id: int | None) -> Connector | None:
        """Pick the connector for a RemoteStart (the given one or the first free) and hold it."""
        if connector_id is None:
            conn = next((c for c in self.connectors.values() if c.free), None)
        else:
            conn = self.connectors.get(connector_id)
        if conn is None or not conn.free or not self.operative:
            return None
        conn.starting = True
        return conn

    async def begin(self, conn: Connector, id_tag: str) -> None:
        """The driver plugs in, then the transaction starts (after Authorize if configured)."""
        try:
            conn.plugged = True
            self._set_status(conn, PREPARING)
            if self._config.flag("AuthorizeRemoteTxRequests") and not await self._authorize(id_tag):
                self._emit("rejected", f"idTag {id_tag} not authorized on connector {conn.id}")
                conn.starting = conn.plugged = False
                self._apply_scheduled(conn)
                self._set_status(conn, conn.idle_status)
                return
            self._open(conn, id_tag)
        finally:
            conn.starting = False

    def transaction(self, transaction_id: int) -> Connector | None:
        """The connector running the transaction with this central-system id."""
        return next((c for c in self.connectors.values()
                     if c.tx is not None and c.tx.transaction_id == transaction_id), None)

    def stop(self, connector_id: int, reason: str, *, unplugged: bool = False) -> bool:
        """End the transaction on a connector; False when none runs. Sends StopTransaction."""
        conn = self.connectors[connector_id]
        tx = conn.tx
        if tx is None:
            return False
        self._advance(conn, tx)
        tx.stop_reason = reason
        for task in tx.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        conn.tx, conn.last_tx = None, tx
        meter_stop, stopped_at = conn.meter_wh, iso()
        stop_data = self._config.measurands("StopTxnSampledData")
        self._outbox.put(lambda: stop_transaction(tx, meter_stop, stopped_at, stop_data),
                         persistent=True)
        self._emit("stopped", f"stopped transaction {tx.transaction_id or '(unconfirmed)'} on "
                   f"connector {conn.id}: {reason}, {tx.energy_wh / 1000:.2f} kWh")
        self._apply_scheduled(conn)
        if unplugged:
            conn.plugged = conn.finished = False
        else:
            conn.finished = True
            self._spawn(self._unplug_later(conn))
        self._set_status(conn, conn.idle_status)
        return True

    def stop_all(self, reason: str) -> None:
        """Stop every transaction (before a reset)."""
        for conn in self.connectors.values():
            self.stop(conn.id, reason, unplugged=True)

    # --- the driver at the charger ---------------------------------------------------------

    def plug_in(self, connector_id: int) -> bool:
        """A car is plugged in without a session yet: Preparing until a RemoteStart or timeout."""
        conn = self.connectors[connector_id]
        if conn.plugged or conn.tx is not None or not conn.operative:
            return False
        conn.plugged, conn.finished = True, False
        self._set_status(conn, PREPARING)
        self._spawn(self._connection_timeout(conn))
        return True

    def unplug(self, connector_id: int) -> bool:
        """The driver takes the cable: ends a running transaction with reason EVDisconnected."""
        conn = self.connectors[connector_id]
        if conn.tx is not None:
            return self.stop(connector_id, Reason.ev_disconnected, unplugged=True)
        if not conn.plugged:
            return False
        conn.plugged = conn.finished = False
        self._set_status(conn, conn.idle_status)
        return True

    def unlock(self, connector_id: int) -> None:
        """UnlockConnector: a running transaction ends first (reason UnlockCommand)."""
        self.stop(connector_id, Reason.unlock_command)

    # --- availability, boot, reboot --------------------------------------------------------

    def busy(self, connector_id: int) -> bool:
        """A transaction runs or starts on the connector (or on any, for connector 0)."""
        targets = self.connectors.values() if connector_id == 0 else [self.connectors[connector_id]]
        return any(c.tx is not None or c.starting for c in targets)

    def set_availability(self, connector_id: int, operative: bool) -> None:
        """ChangeAvailability; on a busy connector it applies when the transaction ends."""
        if connector_id == 0:
            targets = list(self.connectors.values())
            self.operative = operative
            self.send_statuses(0)
        else:
            targets = [self.connectors[connector_id]]
        for conn in targets:
            if conn.tx is not None or conn.starting:
                conn.scheduled_operative = operative
            else:
                conn.operative, conn.scheduled_operative = operative, None
                self._set_status(conn, conn.idle_status)

    @property
    def status_0(self) -> str:
        """Status of connector 0, the charge point as a whole."""
        return AVAILABLE if self.operative else UNAVAILABLE

    def send_statuses(self, connector_id: int | None = None) -> None:
        """StatusNotification for connector 0 and every connector (after boot), or just one."""
        if connector_id in (None, 0):
            self._send_status(0, self.status_0)
        for conn in self.connectors.values():
            if connector_id in (None, conn.id):
                self._send_status(conn.id, conn.status)

    def send_meter_values(self, connector_id: int | None = None) -> None:
        """MeterValues on request (TriggerMessage): not transaction messages, never queued."""
        for conn in self.connectors.values():
            if connector_id in (None, conn.id):
                tx = conn.tx
                if tx is not None:
                    self._advance(conn, tx)
                sample = meter_sample(conn, tx, ReadingContext.trigger, self._sampled())
                if sample is not None:
                    self._outbox.put(functools.partial(meter_values, conn, tx, sample),
                                     persistent=False)

    def reboot(self) -> None:
        """After a reset every cable is out and nothing is being started."""
        for conn in self.connectors.values():
            conn.plugged = conn.finished = conn.starting = False
            conn.status = conn.idle_status
        self._touch()

    # --- internals -------------------------------------------------------------------------

    def _sampled(self) -> frozenset[str]:
        return self._config.measurands("MeterValuesSampledData")

    def _open(self, conn: Connector, id_tag: str) -> None:
        loop = asyncio.get_running_loop()
        vehicle = random_vehicle(self._rng, capacity_wh=self._battery_wh,
                                 start_soc=self._start_soc)
        tx = Transaction(conn.id, id_tag, vehicle, meter_start=conn.meter_wh,
                         started_at=iso(), last_update=loop.time())
        conn.tx = tx
        self._outbox.put(lambda: start_transaction(tx), persistent=True,
                         on_result=lambda result: self._started(conn, tx, result),
                         on_failed=lambda: self._stop_tx(conn, tx, Reason.other))
        self._set_status(conn, CHARGING)
        task = self._spawn(self._meter(conn, tx))
        tx.tasks.add(task)
        task.add_done_callback(tx.tasks.discard)

    def _started(self, conn: Connector, tx: Transaction, result: Any) -> None:
        tx.transaction_id = result.transaction_id
        status = result.id_tag_info.get("status")
        self._emit("started", f"started transaction {tx.transaction_id} on connector "
                   f"{conn.id} for idTag {tx.id_tag} (battery {tx.vehicle.soc:.0f}% of "
                   f"{tx.vehicle.capacity_wh / 1000:.0f} kWh)")
        if status != "Accepted" and self._config.flag("StopTransactionOnInvalidId"):
            self._stop_tx(conn, tx, Reason.de_authorized)

    def _stop_tx(self, conn: Connector, tx: Transaction, reason: str) -> None:
        # Only if that transaction still runs: the answer may come after a later one started.
        if conn.tx is tx:
            self.stop(conn.id, reason)

    async def _meter(self, conn: Connector, tx: Transaction) -> None:
        while True:
            await asyncio.sleep(self._config.number("MeterValueSampleInterval"))
            self._advance(conn, tx)
            sample = meter_sample(conn, tx, ReadingContext.sample_periodic, self._sampled())
            if sample is not None:
                self._outbox.put(functools.partial(meter_values, conn, tx, sample), persistent=True)
            self._touch()
            if tx.vehicle.full:
                self._set_status(conn, SUSPENDED_EV)
                self._emit("full", f"battery full on connector {conn.id}")
                await asyncio.sleep(self._finish_delay)
                self.unplug(conn.id)
                return

    def _advance(self, conn: Connector, tx: Transaction) -> None:
        """Charge for the time since the last update; time runs `speed` times faster."""
        now = asyncio.get_running_loop().time()
        delivered = tx.vehicle.charge((now - tx.last_update) * self._speed, self._max_power_w)
        tx.last_update = now
        tx.energy_wh += delivered
        conn.register_wh += delivered

    async def _authorize(self, id_tag: str) -> bool:
        try:
            result = await self._outbox.request(lambda: call.Authorize(id_tag=id_tag))
        except Offline:
            return False
        return result.id_tag_info.get("status") == "Accepted"

    async def _unplug_later(self, conn: Connector) -> None:
        await asyncio.sleep(self._finish_delay)
        if conn.finished and conn.tx is None:
            self.unplug(conn.id)

    async def _connection_timeout(self, conn: Connector) -> None:
        await asyncio.sleep(self._config.number("ConnectionTimeOut"))
        if conn.status == PREPARING and conn.tx is None and not conn.starting:
            self.unplug(conn.id)

    @staticmethod
    def _apply_scheduled(conn: Connector) -> None:
        if conn.scheduled_operative is not None:
            conn.operative, conn.scheduled_operative = conn.scheduled_operative, None

    def _set_status(self, conn: Connector, status: str) -> None:
        if status == conn.status:
            return
        conn.status = status
        self._send_status(conn.id, status)
        self._touch()
        self._emit("status", f"connector {conn.id}: {status}")

    def _send_status(self, connector_id: int, status: str) -> None:
        at = iso()
        self._outbox.put(lambda: status_notification(connector_id, status, at), persistent=False)
