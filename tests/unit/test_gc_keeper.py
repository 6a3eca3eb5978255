"""The garbage-collector keeper of `strom run`: survivors frozen, garbage collected, frozen
cycles reclaimed when the frozen set grows, and nothing thawed under a steady load."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator

import pytest

from strom.gc_keeper import GcKeeper, short_gc_pauses
from tests.polling import eventually


class Node:
    """A tracked object that can be part of a reference cycle and watched by a weak ref."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycles(count: int) -> list[Node]:
    """`count` pairs of nodes referring to each other (only the collector frees them)."""
    pairs = []
    for _ in range(count):
        a, b = Node(), Node()
        a.other, b.other = b, a
        pairs.append(a)
    return pairs


@pytest.fixture
def keeper() -> Iterator[GcKeeper]:
    """A keeper with the test process's heap frozen; the process is thawed afterwards."""
    keeper = GcKeeper(freeze_at=1_000)
    keeper.start_up()
    yield keeper
    gc.unfreeze()


def test_start_up_freezes_what_exists(keeper: GcKeeper) -> None:
    assert gc.get_freeze_count() > 1_000
    assert len(gc.get_objects()) < 1_000


def test_many_survivors_are_frozen_and_a_full_collection_then_walks_few(
        keeper: GcKeeper) -> None:
    live = cycles(5_000)  # a fleet connecting: its objects stay
    frozen = gc.get_freeze_count()
    keeper.step()
    assert gc.get_freeze_count() >= frozen + 10_000
    assert len(gc.get_objects()) < 1_000
    del live


def test_garbage_is_collected_before_a_freeze(keeper: GcKeeper) -> None:
    watched = weakref.ref(cycles(1)[0])
    live = cycles(5_000)
    keeper.step()
    assert watched() is None  # collected, not frozen for good
    del live


def test_frozen_cycles_are_reclaimed_once_the_heap_has_grown(keeper: GcKeeper) -> None:
    gone = cycles(5_000)
    watched = weakref.ref(gone[0])
    keeper.step()  # frozen: from now on only a thaw can collect them
    del gone  # the connections closed; their cycles are garbage in the frozen set
    keeper.step()
    assert watched() is not None and keeper.thaws == 1
    grown = cycles(sys.getallocatedblocks() // 3)  # two nodes a pair: the heap more than doubles
    keeper.step()
    assert watched() is None and keeper.thaws == 2
    del grown


def test_no_thaw_under_a_steady_load(keeper: GcKeeper) -> None:
    fleet = cycles(5_000)
    keeper.step()
    thaws = keeper.thaws
    for _ in range(20):  # messages come and go; their objects die young
        traffic = cycles(2_000)
        del traffic
        keeper.step()
    assert keeper.thaws == thaws
    del fleet


def test_short_lived_survivors_never_make_it_walk_the_frozen_set(
        keeper: GcKeeper, monkeypatch: pytest.MonkeyPatch) -> None:
    # At 10,000 chargers ~20,000 objects are young at any moment (each connection's ping timer,
    # calls in flight) and die within seconds after they were frozen. Counted as growth, they
    # made the keeper walk its ~900,000 frozen objects every ~10 s under a steady load: a
    # 100-600 ms stall each time, OCPP 2.0.1's nominal p99 of 730 ms (docs/performance.md).
    walked = []
    count = gc.get_freeze_count

    def counting() -> int:
        walked.append(1)
        return count()

    monkeypatch.setattr(gc, "get_freeze_count", counting)
    fleet = []
    for _ in range(5):  # a fleet connecting in parts, far below half the heap
        fleet.append(cycles(600))
        keeper.step()
        assert len(gc.get_objects()) < 1_000  # this part was frozen
    thaws = keeper.thaws
    for _ in range(40):  # survivors of each step that die before the next
        in_flight = cycles(2_000)
        keeper.step()
        del in_flight
    assert walked == [] and keeper.thaws == thaws
    del fleet


async def test_the_keeper_steps_on_its_own_and_stops_with_the_server() -> None:
    try:
        async with short_gc_pauses(interval=0.01) as keeper:
            live = [cycles(6_000)]
            frozen = gc.get_freeze_count()

            async def frozen_now() -> int:
                return gc.get_freeze_count()

            await eventually(frozen_now, lambda count: count >= frozen + 10_000, seconds=5)
            assert keeper.thaws >= 1  # start-up
            del live
    finally:
        gc.unfreeze()
