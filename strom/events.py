"""A small typed in-process publish/subscribe bus.

The core (OCPP, lightning, sessions) publishes facts after they are committed to the store;
interfaces (web SSE, nostr bots, TUI stream) subscribe. The core never imports an interface.

Each subscriber gets its own queue and task, so a slow or failing subscriber neither blocks
the publisher nor the other subscribers, and sees events in publication order. A view (a page,
the TUI, status announcements) may fall behind and lose events past `max_queue`; a money
subscriber (`durable=True`) never does. Neither is the only way money is acted on: what the
store records as paid is reconciled from the store (`SessionService.reconcile`), so a handler
that fails or a process that dies with events queued loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E", bound="BusEvent")


@dataclass(frozen=True, slots=True)
class BusEvent:
    """Base class of everything published on the bus."""


# --- OCPP facts ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargePointConnected(BusEvent):
    cp_id: str


@dataclass(frozen=True, slots=True)
class ChargePointDisconnected(BusEvent):
    cp_id: str


@dataclass(frozen=True, slots=True)
class ChargePointBooted(BusEvent):
    cp_id: str
    vendor: str
    model: str


@dataclass(frozen=True, slots=True)
class ConnectorStatusChanged(BusEvent):
    """StatusNotification; connector_id 0 is the charge point as a whole."""

    cp_id: str
    connector_id: int
    status: str
    error_code: str = "NoError"


@dataclass(frozen=True, slots=True)
class TransactionStarted(BusEvent):
    cp_id: str
    connector_id: int
    transaction_id: int
    id_tag: str
    meter_start_wh: float
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class MeterSample(BusEvent):
    """A reading of a transaction. `energy_wh` is the cumulative energy register in Wh on the
    origin of StartTransaction's meterStart, never less than the transaction's last one, however
    the charger metered: `source` says whether it was read from the register, summed from
    `Energy.Active.Import.Interval` values or integrated from power (`strom.ocpp.metering`).
    Every number is finite and within bounds (`strom.ocpp.meter`)."""

    cp_id: str
    connector_id: int
    transaction_id: int | None
    timestamp: datetime
    energy_wh: float | None = None
    power_w: float | None = None
    soc_percent: float | None = None
    source: str | None = None  # "register" | "interval" | "power"; None without energy


def of_transactions(event: BusEvent) -> bool:
    """False for a `MeterSample` of no transaction (a charger's reading between sessions):
    nothing is billed from one, so subscribers that only bill pass this as `when` and are
    not woken for each of them."""
    return not isinstance(event, MeterSample) or event.transaction_id is not None


@dataclass(frozen=True, slots=True)
class TransactionStopped(BusEvent):
    cp_id: str
    transaction_id: int
    id_tag: str | None
    meter_stop_wh: float
    reason: str
    timestamp: datetime


# --- Lightning facts ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoicePaid(BusEvent):
    payment_hash: str
    amount_msat: int
    preimage: str
    paid_at: datetime


# --- Session facts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionChanged(BusEvent):
    session_id: str
    cp_id: str
    state: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AddressRefundAbandoned(BusEvent):
    """The last try to refund `session_id` to the payer's lightning address failed: the
    withdraw link stays their way to the money (published once)."""

    session_id: str
    address: str
    attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class LogLine(BusEvent):
    level: str
    logger: str
    message: str


Handler = Callable[[Any], Awaitable[None]]
BatchHandler = Callable[[list[Any]], Awaitable[None]]
Wanted = Callable[[BusEvent], bool]  # whether a subscriber wants one event of its types


class EventBus:
    """Typed publish/subscribe; `publish` never blocks and never raises."""

    def __init__(self, max_queue: int = 10_000) -> None:
        self._subscribers: list[tuple[tuple[type[BusEvent], ...], Wanted | None,
                                      asyncio.Queue[BusEvent]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._max_queue = max_queue

    def publish(self, event: BusEvent) -> None:
        """Deliver `event` to every subscriber interested in its type (and that wants it)."""
        for types, when, queue in list(self._subscribers):
            if isinstance(event, types) and (when is None or when(event)):
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    log.warning("event subscriber is %d events behind; dropping %s",
                                queue.qsize(), type(event).__name__)

    def subscribe(self, handler: Handler, *types: type[BusEvent], durable: bool = False,
                  when: Wanted | None = None) -> None:
        """Run `await handler(event)` for each matching event, in order, in a task of its own.

        A `durable` subscriber's queue is unbounded: it is never dropped an event, however far
        behind it is (for money; its events are few, each one a payment or a session step).
        Any other subscriber loses events past `max_queue` (views that can be redrawn).
        `when` (asked at publication, so it must not depend on what the handler has seen yet)
        leaves out events the handler would ignore: each one delivered costs a task switch.
        """
        queue = self._queue(types, when, durable)

        async def pump() -> None:
            while True:
                event = await queue.get()
                try:
                    await handler(event)
                except Exception:
                    log.exception("event handler %s failed on %s",
                                  getattr(handler, "__qualname__", handler), type(event).__name__)

        self._pump(pump(), handler)

    def subscribe_batches(self, handler: BatchHandler, *types: type[BusEvent], window: float,
                          durable: bool = False, when: Wanted | None = None) -> None:
        """Run `await handler(events)` with the matching events gathered for `window` seconds
        after the first one, in publication order, in a task of its own (as `subscribe`).

        For a subscriber that reads the store for what it is told and is in no hurry (a push
        to a roaming partner, a charger's site limit or card list after it booted): a boot
        storm's events cost it one read per batch, not one each. Each read still comes after
        the events it answers.
        """
        queue = self._queue(types, when, durable)

        async def pump() -> None:
            while True:
                events = [await queue.get()]
                await asyncio.sleep(window)
                while not queue.empty():
                    events.append(queue.get_nowait())
                try:
                    await handler(events)
                except Exception:
                    log.exception("event handler %s failed on %d events",
                                  getattr(handler, "__qualname__", handler), len(events))

        self._pump(pump(), handler)

    def _queue(self, types: tuple[type[BusEvent], ...], when: Wanted | None,
               durable: bool) -> asyncio.Queue[BusEvent]:
        queue: asyncio.Queue[BusEvent] = asyncio.Queue(0 if durable else self._max_queue)
        self._subscribers.append((types or (BusEvent,), when, queue))
        return queue

    def _pump(self, pump: Coroutine[Any, Any, None], handler: object) -> None:
        task = asyncio.get_running_loop().create_task(pump, name=f"bus:{handler}")
        self._tasks.add(task)

    @asynccontextmanager
    async def listen(self, *types: type[E]) -> AsyncIterator[asyncio.Queue[E]]:
        """A queue that receives matching events while the context is open (e.g. one SSE client)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(self._max_queue)
        entry: tuple[tuple[type[BusEvent], ...], Wanted | None, asyncio.Queue[Any]] = (
            types or (BusEvent,), None, queue)
        self._subscribers.append(entry)
        try:
            yield queue
        finally:
            self._subscribers.remove(entry)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
