"""A simulated OCPP 1.6J (or 2.0.1) charge point: connects, boots, heartbeats, charges cars,
reconnects.

    sim = SimulatedChargePoint("demo-1", "ws://127.0.0.1:9000/ocpp", connectors=2)
    await sim.start()          # returns at once; connecting and booting run in the background
    await sim.wait_for(lambda: sim.booted)
    ...
    await sim.close()

The simulated time runs `speed` times faster than the wall clock for the energy delivered
(meter samples still go out every `meter_interval` real seconds), so a test can watch a
"30 minute" session in seconds.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from ocpp.v16.enums import Reason
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from strom.simulator.call_queue import CallQueue, Offline
from strom.simulator.charging import Charging
from strom.simulator.config_keys import KeyStore
from strom.simulator.link import OcppLink
from strom.simulator.link201 import OcppLink201, Translation

log = logging.getLogger("strom.simulator")

# When the central system answers Pending/Rejected with interval 0, or not at all.
BOOT_RETRY_S = 10.0
# A restarting charge point is back after this long.
REBOOT_S = 1.0
# Shutting down must not hang on a central system that does not answer the closing handshake.
CLOSE_TIMEOUT_S = 5.0
HINTS = {401: "wrong or missing password?", 403: "forbidden",
         404: "unknown charge point id; register it with `strom cp add`"}


@dataclass(frozen=True)
class SimEvent:
    """Something a person watching the simulator wants to know.

    kinds: connected, booted, pending, unreachable, refused, disconnected, reset, started,
    stopped, full, rejected, status, dropped.
    """

    cp_id: str
    kind: str
    message: str


class SimulatedChargePoint:
    """One charge point with `connectors` outlets, speaking OCPP 1.6J (or `ocpp="ocpp2.0.1"`,
    through `link201.OcppLink201`) to `url`/`cp_id`."""

    def __init__(self, cp_id: str, url: str, *, connectors: int = 1, password: str | None = None,
                 meter_interval: float = 10.0, max_power_w: float = 11_000, speed: float = 1.0,
                 battery_wh: float | None = None, start_soc: float | None = None,
                 vendor: str = "strom", model: str = "strom-sim", firmware: str = "0.1.0",
                 heartbeat_interval: int = 300, finish_delay: float = 5.0,
                 reconnect_min: float = 1.0, reconnect_max: float = 30.0,
                 response_timeout: float = 30.0, seed: int | None = None,
                 on_event: Callable[[SimEvent], None] | None = None,
                 ocpp: str = "ocpp1.6") -> None:
        if connectors < 1 or meter_interval <= 0 or speed <= 0 or max_power_w <= 0:
            raise ValueError("connectors, meter_interval, speed and max_power_w must be positive")
        self.cp_id = cp_id
        self.url = f"{url.rstrip('/')}/{quote(cp_id, safe='')}"
        try:
            parse_uri(self.url)
        except InvalidURI as exc:
            raise ValueError(f"{url!r} is not a ws:// or wss:// URL") from exc
        self._password = password
        if ocpp not in ("ocpp1.6", "ocpp2.0.1"):
            raise ValueError(f"OCPP {ocpp!r}: the simulator speaks ocpp1.6 and ocpp2.0.1")
        self.ocpp = ocpp
        self._translation = Translation()  # 2.0.1: its transactions' names, across connections
        self._vendor, self._model, self._firmware = vendor, model, firmware
        self._reconnect = (reconnect_min, reconnect_max)
        self._response_timeout = response_timeout
        self._on_event = on_event
        self._rng = random.Random(seed)
        self.config = KeyStore(connectors=connectors, heartbeat_interval=heartbeat_interval,
                                    meter_interval=meter_interval)
        self.outbox = CallQueue(attempts=lambda: self.config.number("TransactionMessageAttempts"),
                             retry_interval=lambda: self.config.number(
                                 "TransactionMessageRetryInterval"),
                             on_dropped=lambda why: self._emit("dropped", f"gave up on {why}"))
        self.charging = Charging(
            connectors=connectors, outbox=self.outbox, config=self.config, rng=self._rng,
            speed=speed, max_power_w=max_power_w, finish_delay=finish_delay,
            battery_wh=battery_wh, start_soc=start_soc, emit=self._emit, touch=self._touch,
            spawn=self.spawn)
        self._booted = False
        self._ws: ClientConnection | None = None
        self._main: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._closing = self._rebooting = False
        self._offline_until = 0.0

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background (it keeps reconnecting until `close`)."""
        if self._main is None:
            self._closing = False
            self._main = asyncio.create_task(self._run(), name=f"sim {self.cp_id}")

    async def close(self, *, stop_reason: str | None = None, flush_timeout: float = 2.0) -> None:
        """Disconnect cleanly and stop. With `stop_reason`, running transactions end first
        and their StopTransaction gets up to `flush_timeout` seconds to go out."""
        if self._main is None:
            return
        if stop_reason is not None:
            self.charging.stop_all(stop_reason)
            if self._booted:
                await self.outbox.drained(flush_timeout)
        self._closing = True
        ws = self._ws
        if ws is not None:
            await ws.close()
        tasks = [self._main, *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._main = None

    async def drop(self, offline_for: float = 0.0) -> None:
        """Test hook: lose the network (no closing handshake), stay offline `offline_for` s."""
        self._offline_until = asyncio.get_running_loop().time() + offline_for
        ws = self._ws
        if ws is not None:
            ws.transport.abort()
            await self.wait_for(lambda: not self.connected)

    async def reset(self, *, hard: bool) -> None:
        """Reboot as after Reset: stop transactions, disconnect, come back and boot again."""
        self._emit("reset", f"{'hard' if hard else 'soft'} reset")
        self.charging.stop_all(Reason.hard_reset if hard else Reason.soft_reset)
        if not hard and self._booted:
            # A soft reset says goodbye properly: StopTransaction goes out before rebooting.
            await self.outbox.drained(5.0)
        self._rebooting = True
        ws = self._ws
        if ws is not None:
            if hard:
                ws.transport.abort()
            else:
                await ws.close()
            await self.wait_for(lambda: not self.connected)
        self.charging.reboot()

    async def __aenter__(self) -> SimulatedChargePoint:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # --- what tests and the CLI observe ----------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def booted(self) -> bool:
        """Connected, and the central system accepted the BootNotification."""
        return self._booted

    def connector_status(self, connector_id: int) -> str:
        return self.charging.connectors[connector_id].status

    def transaction_id(self, connector_id: int) -> int | None:
        """The central system's id of the running transaction (None before it answered)."""
        tx = self.charging.connectors[connector_id].tx
        return tx.transaction_id if tx is not None else None

    def energy_wh(self, connector_id: int) -> float:
        """Energy of the running transaction, else of the last one."""
        conn = self.charging.connectors[connector_id]
        tx = conn.tx or conn.last_tx
        return tx.energy_wh if tx is not None else 0.0

    def meter_wh(self, connector_id: int) -> int:
        """The connector's energy register (Wh) as the meter shows it."""
        return self.charging.connectors[connector_id].meter_wh

    async def wait_for(self, predicate: Callable[[], bool], seconds: float = 10.0) -> None:
        """Wait until `predicate()` holds, checked after every change; TimeoutError if not."""
        async with asyncio.timeout(seconds):
            while not predicate():
                await self._changed.wait()

    # --- the driver ------------------------------------------------------------------------

    def plug_in(self, connector_id: int) -> bool:
        """Plug a car in (Preparing) without starting; False if the connector is not free."""
        return self.charging.plug_in(connector_id)

    def unplug(self, connector_id: int) -> bool:
        """Unplug the car; a running transaction stops with reason EVDisconnected."""
        return self.charging.unplug(connector_id)

    # --- used by the OCPP handlers ---------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` as a task owned by this charge point (cancelled on close)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def trigger(self, message: str, connector_id: int | None) -> None:
        """Send what TriggerMessage asked for."""
        if message == "BootNotification":
            self.spawn(self._triggered_boot())
        elif message == "Heartbeat":
            self.outbox.put(call.Heartbeat, persistent=False)
        elif message == "StatusNotification":
            self.charging.send_statuses(connector_id)
        else:
            self.charging.send_meter_values(connector_id or None)

    # --- internals -------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._closing:
            offline = self._offline_until - loop.time()
            if offline > 0:
                await asyncio.sleep(offline)
            try:
                ws = await connect(self.url, subprotocols=[Subprotocol(self.ocpp)],
                                   additional_headers=self._headers(), proxy=None,
                                   close_timeout=CLOSE_TIMEOUT_S,
                                   user_agent_header=f"{self._vendor}/{self._model}")
            except InvalidStatus as exc:
                failures += 1
                delay = self._backoff(failures)
                code = exc.response.status_code
                self._emit("refused", f"{self.url} refused the connection: HTTP {code} "
                           f"({HINTS.get(code, 'see the server log')}); retrying in {delay:g}s")
            except (OSError, TimeoutError, WebSocketException) as exc:
                failures += 1
                delay = self._backoff(failures)
                why = "" if isinstance(exc, ConnectionRefusedError) else f" ({exc or 'timed out'})"
                self._emit("unreachable", f"cannot reach {self.url}{why} — is `strom run` "
                           f"running? retrying in {delay:g}s")
            else:
                failures = 0
                await self._serve(ws)
                delay = REBOOT_S if self._rebooting else self._backoff(1)
                self._rebooting = False
                if not self._closing:
                    self._emit("disconnected", f"disconnected; reconnecting in {delay:g}s")
            await asyncio.sleep(delay)

    async def _serve(self, ws: ClientConnection) -> None:
        link: OcppLink | OcppLink201 = (
            OcppLink201(self, ws, self._response_timeout, self._translation)
            if ws.subprotocol == "ocpp2.0.1" else OcppLink(self, ws, self._response_timeout))
        self._ws = ws
        self._emit("connected", f"connected to {self.url}")
        tasks = [asyncio.create_task(link.start()), asyncio.create_task(self._online(link))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._ws, self._booted = None, False
            self.outbox.go_offline()
            self._touch()
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketException):
                log.error("%s: connection handler failed", self.cp_id, exc_info=exc)
        await ws.close()

    async def _online(self, link: OcppLink | OcppLink201) -> None:
        await self._boot(link)
        self._booted = True
        self._emit("booted", f"booted ({self.charging_summary()})")
        self.outbox.go_online()
        self.charging.send_statuses()
        await asyncio.gather(self.outbox.run(link), self._heartbeat())

    async def _boot(self, link: OcppLink | OcppLink201) -> None:
        while True:
            try:
                result = await link.call(self._boot_notification(), suppress=False)
            except (OCPPError, TimeoutError) as exc:
                self._emit("pending", f"BootNotification failed ({exc or 'no answer'}); "
                           f"retrying in {BOOT_RETRY_S:g}s")
                await asyncio.sleep(BOOT_RETRY_S)
                continue
            if result.status == "Accepted":
                self._apply_interval(result.interval)
                return
            delay = result.interval if result.interval > 0 else BOOT_RETRY_S
            self._emit("pending", f"boot {result.status}; retrying in {delay:g}s")
            await asyncio.sleep(delay)

    async def _triggered_boot(self) -> None:
        try:
            result = await self.outbox.request(self._boot_notification)
        except Offline:
            return
        if result.status == "Accepted":
            self._apply_interval(result.interval)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.config.number("HeartbeatInterval"))
            self.outbox.put(call.Heartbeat, persistent=False)

    def _boot_notification(self) -> call.BootNotification:
        return call.BootNotification(
            charge_point_vendor=self._vendor, charge_point_model=self._model,
            firmware_version=self._firmware, charge_point_serial_number=f"SIM-{self.cp_id}"[:25])

    def _apply_interval(self, interval: int) -> None:
        if interval > 0:
            self.config.set("HeartbeatInterval", str(interval))

    def _headers(self) -> dict[str, str]:
        if self._password is None:
            return {}
        token = base64.b64encode(f"{self.cp_id}:{self._password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def _backoff(self, failures: int) -> float:
        low, high = self._reconnect
        # Jitter, so a fleet that lost its server does not come back in one burst.
        delay = min(high, low * 2 ** (failures - 1)) * self._rng.uniform(0.8, 1.2)
        return round(delay, 2)

    def charging_summary(self) -> str:
        """Connector statuses in one short phrase, e.g. `1: Available, 2: Charging`."""
        return ", ".join(f"{c.id}: {c.status}" for c in self.charging.connectors.values())

    def _emit(self, kind: str, message: str) -> None:
        log.log(logging.DEBUG if kind == "status" else logging.INFO, "%s: %s", self.cp_id, message)
        if self._on_event is not None:
            self._on_event(SimEvent(self.cp_id, kind, message))
        self._touch()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task failed", self.cp_id, exc_info=task.exception())
