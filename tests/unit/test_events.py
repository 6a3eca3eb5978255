"""The event bus: views may lose events past the cap, money subscribers never do."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from strom.events import BusEvent, EventBus, MeterSample, of_transactions
from tests.polling import eventually


@dataclass(frozen=True, slots=True)
class Tick(BusEvent):
    n: int


async def test_a_durable_subscriber_never_loses_events_beyond_the_cap() -> None:
    bus = EventBus(max_queue=5)
    release = asyncio.Event()
    seen: dict[str, list[int]] = {"money": [], "view": []}

    def handler(name: str):  # noqa: ANN202
        async def handle(event: Tick) -> None:
            await release.wait()  # a subscriber far behind
            seen[name].append(event.n)
        return handle

    bus.subscribe(handler("money"), Tick, durable=True)
    bus.subscribe(handler("view"), Tick)
    await asyncio.sleep(0)  # both pumps wait for their first event
    for n in range(1000):
        bus.publish(Tick(n))
    release.set()
    await eventually(lambda: asyncio.sleep(0, seen["money"]), lambda s: len(s) == 1000)
    assert seen["money"] == list(range(1000))  # all of them, in order
    await asyncio.sleep(0.05)
    assert len(seen["view"]) <= 6  # the cap, and the one it was handling: shed
    await bus.close()


async def test_a_failing_handler_does_not_stop_its_subscription() -> None:
    bus = EventBus()
    seen: list[int] = []

    async def handle(event: Tick) -> None:
        if event.n == 0:
            raise RuntimeError("failed once")
        seen.append(event.n)

    bus.subscribe(handle, Tick, durable=True)
    for n in range(3):
        bus.publish(Tick(n))
    await eventually(lambda: asyncio.sleep(0, seen), lambda s: s == [1, 2])
    await bus.close()


async def test_a_subscriber_is_not_woken_for_events_it_does_not_want() -> None:
    """`when` is asked at publication: a reading of no transaction never reaches (nor wakes)
    the subscribers that bill, every other event does, in order."""
    bus = EventBus()
    seen: list[BusEvent] = []

    async def handle(event: BusEvent) -> None:
        seen.append(event)

    bus.subscribe(handle, MeterSample, Tick, durable=True, when=of_transactions)
    at = datetime(2026, 11, 27, tzinfo=UTC)
    wanted = [MeterSample("cp", 1, 7, at, energy_wh=1.0), Tick(1)]
    bus.publish(MeterSample("cp", 1, None, at, energy_wh=1.0))
    for event in wanted:
        bus.publish(event)
    await eventually(lambda: asyncio.sleep(0, seen), lambda s: len(s) == 2)
    assert seen == wanted
    await bus.close()


async def test_a_batch_subscriber_gets_what_came_within_its_window_in_order() -> None:
    """`subscribe_batches`: the events published within `window` of the first come as one
    list, in order; later ones make the next batch; a failing batch does not end it."""
    bus = EventBus()
    batches: list[list[int]] = []

    async def handle(events: list[Tick]) -> None:
        batches.append([e.n for e in events])
        if events[0].n == 0:
            raise RuntimeError("failed once")

    bus.subscribe_batches(handle, Tick, window=0.05, durable=True)
    await asyncio.sleep(0)
    for n in range(100):
        bus.publish(Tick(n))
    await eventually(lambda: asyncio.sleep(0, batches), lambda b: len(b) == 1)
    bus.publish(Tick(100))
    await eventually(lambda: asyncio.sleep(0, batches), lambda b: len(b) == 2)
    assert batches == [list(range(100)), [100]]
    await bus.close()
