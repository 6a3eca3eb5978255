"""Measurement that holds still on a shared machine: pinned cores, interleaved trials, CPU per call.

On 2 cores shared with other work, one run of "strom, then its baseline" says more about what
else ran than about strom. So every figure here is taken as:

- **pinned**: the server on one core, the load generator on the other (`sched_setaffinity`,
  every thread), so neither steals the other's core;
- **interleaved**: strom and its baseline in alternating trials (A B, B A, A B …), several of
  each, reported as median and spread; the ratio is the median of the per-round ratios (a
  round's two trials ran within seconds of each other, under the same outside load);
- **CPU per call**: the server's CPU-seconds (utime + stime from /proc/<pid>/stat) per 1,000
  calls — it barely moves with machine load, where latency does;
- **watched**: the CPU that *other* processes took during the trial (machine busy time from
  /proc/stat minus our own processes), and the time our server waited for a core
  (/proc/<pid>/task/*/schedstat). A trial during which others took more than
  `DISTURBED_CORES` is re-run (at most `RETRIES` times); the least disturbed attempt is kept
  and still flagged if every attempt was disturbed.

The functions here are pure where they can be (tests/bench/test_steady.py).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DISTURBED_CORES = 0.5  # other processes' CPU during a trial above which it is re-run
RETRIES = 2


def median_spread(values: Sequence[float]) -> tuple[float, float]:
    """Median and relative spread ((max - min) / median; 0 for one value or a zero median)."""
    if not values:
        raise ValueError("no values")
    median = statistics.median(values)
    if len(values) < 2 or median == 0:
        return median, 0.0
    return median, (max(values) - min(values)) / abs(median)


def stat_cpu_seconds(stat: str) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds.

    The command name (field 2) is in parentheses and may hold spaces or ')', so the fields are
    counted from the last ')': utime and stime are fields 14 and 15 of the line.
    """
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds(proc_stat: str, cpus: Iterable[int] | None = None) -> float:
    """CPU-seconds the machine (or the given cores) spent busy, from /proc/stat.

    Busy is everything but idle and iowait; steal counts as busy (the hypervisor gave the core
    to someone else). guest time is already inside user time.
    """
    wanted = None if cpus is None else {f"cpu{c}" for c in cpus}
    total = 0
    for line in proc_stat.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or (name != "cpu" if wanted is None else name not in wanted):
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in
                                                                   rest.split()[:8])
        total += user + nice + system + irq + softirq + steal
    return total / CLOCK_TICKS


def schedstat_wait_seconds(texts: Iterable[str]) -> float:
    """Time spent runnable but waiting for a core, summed over /proc/<pid>/task/*/schedstat."""
    return sum(int(text.split()[1]) for text in texts if text.strip()) / 1e9


def others_cores(busy_s: float, own_cpu_s: float, wall_s: float) -> float:
    """Cores' worth of CPU that other processes took: (machine busy - our own CPU) / wall."""
    if wall_s <= 0:
        return 0.0
    return max(0.0, busy_s - own_cpu_s) / wall_s


def is_disturbed(others: float, limit: float = DISTURBED_CORES) -> bool:
    """Whether other processes took so much CPU that the trial measured them as well."""
    return others > limit


def per_thousand(cpu_s: float, calls: int) -> float:
    """CPU-seconds per 1,000 calls."""
    return cpu_s / calls * 1000 if calls else 0.0


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""


def schedstat_cpu_seconds(texts: Iterable[str]) -> float:
    """CPU time (ns, field 1 of /proc/<pid>/task/*/schedstat) summed over threads, in seconds."""
    return sum(int(text.split()[0]) for text in texts if text.strip()) / 1e9


def process_cpu_seconds(pid: int | str = "self") -> float:
    """CPU-seconds of a process's live threads, in nanoseconds' resolution from schedstat
    (utime + stime of /proc/<pid>/stat count in 10 ms ticks, too coarse for a 20-call trial);
    utime + stime where schedstat is missing."""
    tasks = _tasks(pid)
    if tasks and Path(f"{tasks[0]}/schedstat").exists():
        return schedstat_cpu_seconds(_read(f"{task}/schedstat") for task in tasks)
    text = _read(f"/proc/{pid}/stat")
    return stat_cpu_seconds(text) if text else 0.0


def _tasks(pid: int | str) -> list[Path]:
    try:
        return list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []


def process_wait_seconds(pid: int | str = "self") -> float:
    """How long the process's threads waited for a core, in seconds."""
    return schedstat_wait_seconds(_read(f"{task}/schedstat") for task in _tasks(pid))


def pin(pid: int | str, cores: set[int]) -> bool:
    """Pin every thread of `pid` to `cores` (threads it starts later inherit it); False when
    pinning is not possible here (one core, or not allowed)."""
    if (os.cpu_count() or 1) < 2 or not cores:
        return False
    try:
        for task in _tasks(pid):
            os.sched_setaffinity(int(task.name), cores)
    except OSError:
        return False
    return True


def cores() -> tuple[set[int], set[int]]:
    """The server's core and the load generator's: the first two this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return set(allowed), set(allowed)
    return {allowed[0]}, {allowed[1]}


@dataclass
class Watch:
    """Sample the machine and our processes around one trial: `with Watch([server, "self"])`.

    The first pid is the server: its CPU (`server_cpu_s`) and its wait for a core are kept.
    """

    pids: list[int | str]
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    own_cpu_s: float = 0.0
    others: float = 0.0
    wait_s: float = 0.0
    _start: tuple[float, float, list[float], float] = (0.0, 0.0, [], 0.0)

    def _sample(self) -> tuple[float, float, list[float], float]:
        return (time.perf_counter(), machine_busy_seconds(_read("/proc/stat")),
                [process_cpu_seconds(p) for p in self.pids], process_wait_seconds(self.pids[0]))

    def __enter__(self) -> Watch:
        self._start = self._sample()
        return self

    def __exit__(self, *_: object) -> None:
        end = self._sample()
        self.wall_s = end[0] - self._start[0]
        used = [b - a for a, b in zip(self._start[2], end[2], strict=True)]
        self.server_cpu_s, self.own_cpu_s = used[0], sum(used)
        self.others = others_cores(end[1] - self._start[1], self.own_cpu_s, self.wall_s)
        self.wait_s = end[3] - self._start[3]


@dataclass
class Trial:
    """One measurement of one side (strom or baseline) in one round."""

    values: dict[str, float]
    others: float  # cores other processes took meanwhile
    wait_share: float  # share of the wall time the server waited for a core
    attempts: int = 1
    disturbed: bool = False


async def measured(attempt: Callable[[], Awaitable[tuple[dict[str, float], Watch]]],
                   retries: int = RETRIES, limit: float = DISTURBED_CORES) -> Trial:
    """Run `attempt` until it is undisturbed or `retries` re-runs are spent; the least
    disturbed attempt is kept, flagged if it was disturbed."""
    best: Trial | None = None
    for n in range(1, retries + 2):
        values, watch = await attempt()
        trial = Trial(values, watch.others, watch.wait_s / watch.wall_s if watch.wall_s else 0.0,
                      n, is_disturbed(watch.others, limit))
        if best is None or trial.others < best.others:
            best = trial
        if not trial.disturbed:
            break
    assert best is not None
    best.attempts = n
    return best


@dataclass(frozen=True)
class Row:
    """One figure over all rounds: strom's and the baseline's median and spread."""

    group: str
    name: str
    unit: str
    value: float
    spread: float
    baseline: float | None
    baseline_spread: float | None
    ratio: float | None  # median of the per-round ratios
    rounds: int
    disturbed: int  # trials (of either side) still disturbed after their re-runs
    note: str = ""
    samples: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def row(group: str, name: str, unit: str, key: str, ours: Sequence[Trial],
        base: Sequence[Trial] | None = None, base_key: str | None = None, note: str = "") -> Row:
    """Median and spread of `key` over strom's trials, next to the baseline's (`base_key`,
    default the same key) and the median of the per-round ratios."""
    values = [t.values[key] for t in ours]
    value, spread = median_spread(values)
    samples = {"strom": values}
    baseline = baseline_spread = ratio = None
    disturbed = sum(t.disturbed for t in ours)
    if base:
        others = [t.values[base_key or key] for t in base]
        baseline, baseline_spread = median_spread(others)
        ratios = [a / b for a, b in zip(values, others, strict=False) if b]
        ratio = statistics.median(ratios) if ratios else None
        samples["baseline"] = others
        disturbed += sum(t.disturbed for t in base)
    return Row(group, name, unit, value, spread, baseline, baseline_spread, ratio, len(values),
               disturbed, note, samples)


def markdown(rows: Sequence[Row]) -> str:
    """The rows as the Markdown table of docs/performance.md."""
    lines = ["| group | figure | strom (median ± spread) | baseline (median ± spread) "
             "| ratio | rounds | disturbed | note |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        base = "" if r.baseline is None else f"{_num(r.baseline)} ± {r.baseline_spread:.0%}"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        note = r.note.replace("|", r"\|")
        lines.append(f"| {r.group} | {r.name} | {_num(r.value)} {r.unit} ± {r.spread:.0%} "
                     f"| {base} | {ratio} | {r.rounds} | {r.disturbed or ''} | {note} |")
    return "\n".join(lines)


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


async def alternating(sides: Sequence[str], rounds: int,
                      trial: Callable[[str], Awaitable[dict[str, float]]]
                      ) -> dict[str, list[dict[str, float]]]:
    """`trial(side)` for every side in each round, the order flipping each round (A B, B A …),
    each result printed as it comes; then each figure's median ± spread per side."""
    results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for n in range(rounds):
        for side in sides if n % 2 == 0 else sides[::-1]:
            results[side].append(await trial(side))
            print(f"round {n + 1} {side}: {results[side][-1]}", flush=True)
    for side, got in results.items():
        figures = {key: median_spread([r[key] for r in got]) for key in got[0]}
        print(side, ", ".join(f"{key} {m:.3f} ± {s:.0%}" for key, (m, s) in figures.items()))
    return results
