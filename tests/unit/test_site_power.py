"""The site power rule (`strom.chargers.power.allocate`): properties under hypothesis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from strom.chargers.power import Allocation, Demand, allocate

demands = st.lists(st.builds(
    lambda key, low, high: Demand(key, max_w=high, min_w=low),
    st.integers(0, 10_000), st.integers(0, 11_000), st.integers(1, 50_000)),
    max_size=12, unique_by=lambda d: d.key)
limits = st.floats(0, 200_000, allow_nan=False)


def _check(limit: float, given_demands: list[Demand], result: Allocation) -> None:
    watts = result.watts
    assert set(watts) == {d.key for d in given_demands}
    assert sum(watts.values()) <= limit  # the fuse holds
    admitted = [d for d in given_demands if d.key not in result.waiting]
    for d in given_demands:
        if d.key in result.waiting:
            assert watts[d.key] == 0
        else:
            assert d.min_w <= watts[d.key] <= d.max_w  # never below its minimum, nor above max
    # A session waits only when its minimum did not fit next to the earlier ones' minimums.
    floors = 0
    for d in given_demands:
        if d.key in result.waiting:
            assert d.min_w > d.max_w or floors + d.min_w > limit
        else:
            floors += d.min_w
    # Fair: a session below another could only get more from it if that one were at its floor.
    for a in admitted:
        for b in admitted:
            if watts[a.key] + 1 < watts[b.key]:
                assert watts[a.key] == a.max_w or watts[b.key] == b.min_w
    # Nothing wasted: whatever is left over (beyond rounding) none of them could take.
    if sum(watts.values()) + len(admitted) <= limit:
        assert all(watts[d.key] == d.max_w for d in admitted)


@given(limits, demands)
def test_the_limit_is_shared_fairly_and_never_exceeded(limit: float,
                                                       given_demands: list[Demand]) -> None:
    _check(limit, given_demands, allocate(limit, given_demands))


def test_two_chargers_on_a_22_kw_fuse() -> None:
    both = allocate(22_000, [Demand("a", 22_000), Demand("b", 22_000)])
    assert both.watts == {"a": 11_000, "b": 11_000} and both.waiting == ()
    capped = allocate(22_000, [Demand("a", 7_400), Demand("b", 22_000)])
    assert capped.watts == {"a": 7_400, "b": 14_600}


def test_a_session_whose_minimum_does_not_fit_waits() -> None:
    result = allocate(5_000, [Demand("a", 11_000, min_w=4_140), Demand("b", 11_000, 4_140),
                              Demand("c", 11_000, 600)])
    assert result.watts == {"a": 4_140, "b": 0, "c": 860}  # c rises to the fair level
    assert result.waiting == ("b",)
