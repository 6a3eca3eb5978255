"""Cheap OCPP 1.6J and 2.0.1 chargers for load: one websocket each, frames built by hand.

The full simulator (`strom.simulator`) keeps a state machine, an outbox and several tasks per
charger; ten thousand of them in the load generator's process would cost more CPU than the
server under test. These chargers boot, send calls and wait for the answers, and answer
RemoteStartTransaction with Accepted followed by a StartTransaction, like a real charger;
any other call from the central system gets NotImplemented.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

CALL, CALLRESULT, CALLERROR = 2, 3, 4
OPEN_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0


class CallFailed(Exception):
    """The central system answered a call with a CALLERROR."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def meter_values(energy_wh: float, power_w: float) -> dict[str, Any]:
    """A MeterValues payload for connector 1 outside a transaction: energy and power."""
    return {"connectorId": 1, "meterValue": [{"timestamp": now_iso(), "sampledValue": [
        {"value": f"{energy_wh:.1f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": f"{power_w:.1f}", "measurand": "Power.Active.Import", "unit": "W"}]}]}


def meter_values_201(energy_wh: float, power_w: float) -> dict[str, Any]:
    """The same reading as `meter_values` in OCPP 2.0.1 (EVSE 1, numbers, unitOfMeasure)."""
    return {"evseId": 1, "meterValue": [{"timestamp": now_iso(), "sampledValue": [
        {"value": round(energy_wh, 1), "measurand": "Energy.Active.Import.Register",
         "unitOfMeasure": {"unit": "Wh"}},
        {"value": round(power_w, 1), "measurand": "Power.Active.Import",
         "unitOfMeasure": {"unit": "W"}}]}]}


def transaction_event(event_type: str, seq_no: int, name: str, energy_wh: float,
                      **more: Any) -> dict[str, Any]:
    """An OCPP 2.0.1 TransactionEvent of transaction `name` on EVSE 1 with `meter_values_201`'s
    reading (`more`: e.g. the idToken of a Started event)."""
    return {"eventType": event_type, "timestamp": now_iso(), "triggerReason": "MeterValuePeriodic",
            "seqNo": seq_no, "transactionInfo": {"transactionId": name,
                                                 "chargingState": "Charging"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": meter_values_201(energy_wh, 7400.0)["meterValue"], **more}


OCPP16, OCPP201 = "ocpp1.6", "ocpp2.0.1"
# What a charger sends to boot, per protocol: BootNotification, then connector 1 Available.
_BOOT = {
    OCPP16: (("BootNotification", {"chargePointVendor": "bench", "chargePointModel": "raw"}),
             ("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                     "status": "Available"})),
    OCPP201: (("BootNotification", {"chargingStation": {"vendorName": "bench",
                                                        "model": "raw"}, "reason": "PowerUp"}),
              ("StatusNotification", {"timestamp": "2026-01-01T00:00:00Z", "evseId": 1,
                                      "connectorId": 1, "connectorStatus": "Available"})),
}


class RawCharger:
    """One charge point on one websocket; calls may overlap (answers match by unique id)."""

    def __init__(self, cp_id: str, base_url: str,
                 on_remote_start: Callable[[RawCharger, float], None] | None = None,
                 protocol: str = OCPP16) -> None:
        self.cp_id = cp_id
        self.protocol = protocol
        self.url = f"{base_url.rstrip('/')}/{cp_id}"
        self.ws: ClientConnection | None = None
        self._on_remote_start = on_remote_start
        self._ids = itertools.count()
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        """Open the websocket (no compression offered) and start reading."""
        # The server pings; the client only answers, so it needs no keepalive task of its own.
        self.ws = await connect(self.url, subprotocols=[Subprotocol(self.protocol)], compression=None,
                                ping_interval=None, open_timeout=OPEN_TIMEOUT, close_timeout=2)
        self._reader = asyncio.create_task(self._read(self.ws))

    async def boot(self) -> None:
        """Connect, BootNotification, StatusNotification Available for connector 1."""
        await self.connect()
        (boot, boot_payload), (status, status_payload) = _BOOT[self.protocol]
        answer = await self.call(boot, boot_payload)
        if answer.get("status") != "Accepted":
            raise CallFailed(f"{self.cp_id}: boot answered {answer}")
        await self.call(status, status_payload)

    def meter_call(self, energy_wh: float, power_w: float) -> tuple[str, dict[str, Any]]:
        """A MeterValues call in this charger's protocol."""
        if self.protocol == OCPP201:
            return "MeterValues", meter_values_201(energy_wh, power_w)
        return "MeterValues", meter_values(energy_wh, power_w)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one CALL and wait for its CALLRESULT payload."""
        assert self.ws is not None
        unique_id = str(next(self._ids))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[unique_id] = future
        try:
            await self.ws.send(json.dumps([CALL, unique_id, action, payload]))
            return await asyncio.wait_for(future, CALL_TIMEOUT)  # type: ignore[no-any-return]
        finally:
            self._pending.pop(unique_id, None)

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake (a network failure)."""
        if self.ws is not None:
            self.ws.transport.abort()

    def go_silent(self) -> None:
        """Stop reading and answering, socket left open: a peer that vanished without a FIN."""
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            self.ws.transport.pause_reading()

    async def close(self) -> None:
        for task in (self._reader, *self._tasks):
            if task is not None:
                task.cancel()
        if self.ws is not None:
            self.ws.transport.abort()
            self.ws = None
        await asyncio.gather(*(t for t in (self._reader, *self._tasks) if t),
                             return_exceptions=True)
        self._reader = None

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                if message[0] == CALL:
                    await self._answer(ws, message[1], message[2], message[3])
                    continue
                future = self._pending.get(message[1])
                if future is None or future.done():
                    continue
                if message[0] == CALLRESULT:
                    future.set_result(message[2])
                else:
                    future.set_exception(CallFailed(f"{message[2]}: {message[3]}"))
        except ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"{self.cp_id}: connection lost"))

    async def _answer(self, ws: ClientConnection, unique_id: str, action: str,
                      payload: dict[str, Any]) -> None:
        if action == "RemoteStartTransaction":
            arrived = time.perf_counter()
            await ws.send(json.dumps([CALLRESULT, unique_id, {"status": "Accepted"}]))
            if self._on_remote_start is not None:
                self._on_remote_start(self, arrived)
            self._spawn(self._start_transaction(payload["idTag"],
                                                payload.get("connectorId") or 1))
        else:
            await ws.send(json.dumps([CALLERROR, unique_id, "NotImplemented",
                                      f"{action} is not simulated", {}]))

    async def _start_transaction(self, id_tag: str, connector_id: int) -> None:
        await self.call("StartTransaction", {"connectorId": connector_id, "idTag": id_tag,
                                             "meterStart": 0, "timestamp": now_iso()})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def boot_all(chargers: Iterable[RawCharger], concurrency: int) -> float:
    """Connect and boot every charger, at most `concurrency` handshakes in flight; seconds taken.

    Unbounded, ten thousand SYNs at once overflow the listen backlog and the figure would be
    the kernel's SYN retry timer; chargers in the field reconnect with jittered back-off.
    """
    gate = asyncio.Semaphore(concurrency)

    async def one(charger: RawCharger) -> None:
        async with gate:
            await charger.boot()

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in chargers))
    return time.perf_counter() - started
