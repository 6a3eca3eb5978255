"""The parts of the method that holds still (bench/steady.py): pure functions, no servers."""

from __future__ import annotations

import os

import pytest

from bench.steady import (
    CLOCK_TICKS,
    Trial,
    Watch,
    alternating,
    is_disturbed,
    machine_busy_seconds,
    markdown,
    measured,
    median_spread,
    others_cores,
    per_thousand,
    process_cpu_seconds,
    row,
    schedstat_cpu_seconds,
    schedstat_wait_seconds,
    stat_cpu_seconds,
)
from bench.trials import interleave

# A /proc/<pid>/stat line whose command name holds a space and a ')': utime 250, stime 50.
STAT = ("4242 (python) x) S 1 4242 4242 0 -1 4194304 9152 0 0 0 250 50 0 0 20 0 3 0 "
        "123456 300000000 9000 18446744073709551615 1 1 0 0 0 0 0 16781312 17642 0 0 0 17 1")
PROC_STAT = """cpu  1000 100 200 5000 50 0 30 20 0 0
cpu0 600 50 100 2500 25 0 10 10 0 0
cpu1 400 50 100 2500 25 0 20 10 0 0
intr 1 2 3
"""


def test_median_and_relative_spread() -> None:
    assert median_spread([10.0, 12.0, 11.0]) == (11.0, pytest.approx(2 / 11))
    assert median_spread([5.0]) == (5.0, 0.0)
    assert median_spread([0.0, 0.0]) == (0.0, 0.0)
    with pytest.raises(ValueError):
        median_spread([])


def test_cpu_seconds_from_a_stat_line_with_a_hostile_command_name() -> None:
    assert stat_cpu_seconds(STAT) == pytest.approx(300 / CLOCK_TICKS)


def test_machine_busy_counts_all_but_idle_and_iowait() -> None:
    # user + nice + system + irq + softirq + steal
    assert machine_busy_seconds(PROC_STAT) == pytest.approx(1350 / CLOCK_TICKS)
    assert machine_busy_seconds(PROC_STAT, [1]) == pytest.approx(580 / CLOCK_TICKS)
    assert machine_busy_seconds(PROC_STAT, [0, 1]) == pytest.approx(1350 / CLOCK_TICKS)


def test_schedstat_sums_cpu_and_wait_over_threads() -> None:
    texts = ["2000000000 500000000 10\n", "1000000000 250000000 3\n", ""]
    assert schedstat_cpu_seconds(texts) == pytest.approx(3.0)
    assert schedstat_wait_seconds(texts) == pytest.approx(0.75)


def test_this_process_cpu_grows_as_it_works() -> None:
    before = process_cpu_seconds(os.getpid())
    sum(i * i for i in range(300_000))
    assert process_cpu_seconds("self") > before


def test_others_cores_and_disturbed() -> None:
    # The machine was busy 3 CPU-s in 2 s, 1 of them ours: others took one core.
    assert others_cores(3.0, 1.0, 2.0) == 1.0
    assert others_cores(1.0, 1.2, 2.0) == 0.0  # sampling skew never goes negative
    assert others_cores(1.0, 0.0, 0.0) == 0.0
    assert is_disturbed(0.8) and not is_disturbed(0.2) and is_disturbed(0.3, limit=0.25)
    assert per_thousand(0.5, 2000) == 0.25 and per_thousand(1.0, 0) == 0.0


def _watch(others: float) -> Watch:
    watch = Watch(["self"])
    watch.others, watch.wall_s, watch.wait_s = others, 2.0, 0.5
    return watch


async def test_a_disturbed_trial_is_rerun_and_the_least_disturbed_kept() -> None:
    seen = iter([1.2, 0.1, 5.0])

    async def attempt() -> tuple[dict[str, float], Watch]:
        others = next(seen)
        return {"v": others}, _watch(others)

    trial = await measured(attempt, retries=2, limit=0.5)
    assert (trial.values, trial.attempts, trial.disturbed) == ({"v": 0.1}, 2, False)
    assert trial.wait_share == 0.25


async def test_retries_are_bounded_and_the_flag_stays() -> None:
    calls = 0

    async def attempt() -> tuple[dict[str, float], Watch]:
        nonlocal calls
        calls += 1
        others = [1.5, 0.9, 1.1][calls - 1]
        return {"v": others}, _watch(others)

    trial = await measured(attempt, retries=2, limit=0.5)
    assert calls == 3 and trial.attempts == 3 and trial.disturbed and trial.values == {"v": 0.9}


def _trial(v: float, disturbed: bool = False) -> Trial:
    return Trial({"x": v}, 0.0, 0.0, disturbed=disturbed)


def test_row_is_median_spread_and_median_of_per_round_ratios() -> None:
    ours = [_trial(10), _trial(30, disturbed=True), _trial(12)]
    base = [_trial(5), _trial(10), _trial(4)]
    r = row("g", "f", "ms", "x", ours, base)
    assert (r.value, r.baseline) == (12, 5)
    assert r.spread == pytest.approx(20 / 12) and r.baseline_spread == pytest.approx(6 / 5)
    assert r.ratio == 3.0  # per round 2, 3, 3: the outlier round does not move it
    assert r.rounds == 3 and r.disturbed == 1
    assert r.samples == {"strom": [10, 30, 12], "baseline": [5, 10, 4]}
    alone = row("g", "f", "ms", "x", ours)
    assert alone.baseline is None and alone.ratio is None
    table = markdown([r, alone])
    assert "| g | f | 12.00 ms ± 167% | 5.00 ± 120% | 3.00 | 3 | 1 |  |" in table
    assert "| g | f | 12.00 ms ± 167% |  |  | 3 | 1 |  |" in table
    small = row("g", "tiny", "ms", "x", [_trial(0.00612)], [_trial(1234.5)])
    assert "| g | tiny | 0.00612 ms ± 0% | 1,234 ± 0% | 0.00 | 1 |  |  |" in markdown([small])


def test_rounds_alternate_which_side_goes_first() -> None:
    assert [interleave(n) for n in range(3)] == [["strom", "baseline"], ["baseline", "strom"],
                                                 ["strom", "baseline"]]


async def test_alternating_flips_the_order_each_round_and_keeps_results_per_side() -> None:
    ran: list[str] = []

    async def trial(side: str) -> dict[str, float]:
        ran.append(side)
        return {"cpu": float(len(ran))}

    results = await alternating(["this", "against"], 3, trial)
    assert ran == ["this", "against", "against", "this", "this", "against"]
    assert results == {"this": [{"cpu": 1.0}, {"cpu": 4.0}, {"cpu": 5.0}],
                       "against": [{"cpu": 2.0}, {"cpu": 3.0}, {"cpu": 6.0}]}
