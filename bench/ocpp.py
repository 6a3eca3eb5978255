"""OCPP at scale: boot N chargers, load them, drop and reconnect them; strom next to a baseline.

Each server runs in a child process (bench/ocpp_server.py) on 127.0.0.1; the chargers are
cheap raw websocket clients (bench/chargers.py) in this process, at most CONCURRENCY
handshakes in flight. One fleet grows to each scale in turn (figures at 1k, 5k, 10k), then
carries the load, drops and reconnects. The baseline is the ocpp library's example central system
(bench/baseline_cs.py), measured with the same chargers in the same run. Then strom boots the
same fleet speaking OCPP 2.0.1 and carries the nominal load: those rows compare 2.0.1 with 1.6.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.chargers import OCPP16, OCPP201, RawCharger, boot_all
from bench.figures import Figure
from bench.ocpp_load import (
    NOMINAL_CALLS_PER_CHARGER,
    P99_LIMIT_MS,
    Step,
    load_step,
    ramp,
    sustained,
)
from bench.ocpp_server import ServerProcess, raise_file_limit, register_chargers

SCALES = (1_000, 5_000, 10_000)
CONCURRENCY = 100
STEP_SECONDS = 7.0
NOMINAL_SECONDS = 10.0
RAMP_FIRST, RAMP_FACTOR, RAMP_LIMIT = 100.0, 1.6, 12_000.0
SILENT = 100  # chargers whose old socket goes silent (no FIN) before they reconnect
LINGER = 3.0  # seconds after all are back before counting zombie sockets
SETTLE_TIMEOUT = 15.0
KINDS = ("strom", "baseline")


@dataclass
class Results:
    """What one server did; filled in as the run goes."""

    boot_s: dict[int, float]
    rss_kib: dict[int, float]
    cpu_s: dict[int, float]
    steps: list[Step] | None = None
    nominal: Step | None = None
    nominal_cpu: float = 0.0
    boot_gc_s: float = 0.0
    boot_gc_longest_ms: float = 0.0
    nominal_gc_longest_ms: float = 0.0
    nominal_gc_longest_cpu_ms: float = 0.0
    nominal_stall_longest_ms: float = 0.0
    storm_s: float = 0.0
    storm_connected: int = 0
    storm_extra_sockets: int = 0
    silent_s: float = 0.0
    silent_extra_sockets: int = 0


def server_sockets(port: int) -> int:
    """ESTABLISHED TCP sockets whose local port is `port`: the server's side of each charger.

    /proc/net/tcp is no snapshot: a table that changes while it is read (other processes
    open sockets too) may list an entry twice, so connections are counted by address pair.
    """
    pairs: set[tuple[str, str]] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        pairs.add((fields[1], fields[2]))
        except OSError:
            continue
    return len(pairs)


@contextmanager
def quiet_gc() -> Iterator[None]:
    """The load generator's own garbage collector would otherwise scan 10k connections often."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def _settled(server: ServerProcess, expected: int) -> tuple[int, int]:
    """Wait until the server counts `expected` chargers on as many sockets; (count, extra)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        connected = (await server.stats())["connected"]
        extra = server_sockets(server.port) - expected
        if (connected == expected and extra == 0) or time.monotonic() > deadline:
            return connected, extra
        await asyncio.sleep(0.2)


async def _storm(server: ServerProcess, chargers: list[RawCharger], results: Results) -> None:
    """Every charger's network drops at once (no closing handshake); all reconnect."""
    started = time.perf_counter()
    for charger in chargers:
        charger.abort()
    await asyncio.gather(*(c.close() for c in chargers))
    await boot_all(chargers, CONCURRENCY)
    results.storm_s = time.perf_counter() - started
    results.storm_connected, results.storm_extra_sockets = await _settled(server, len(chargers))


async def _silent_drop(server: ServerProcess, chargers: list[RawCharger], results: Results,
                       count: int) -> None:
    """`count` chargers lose their link without a FIN (a NAT or LTE drop) and reconnect.

    The old sockets stay open but never answer, like a peer that is gone; the server has to
    replace them. Measured: time until all are booted again, and sockets still open for them
    `LINGER` seconds later (a replaced socket may take a moment to be cut; a zombie stays).
    """
    silent = chargers[:count]
    for charger in silent:
        charger.go_silent()
    again = [RawCharger(c.cp_id, server.url) for c in silent]
    try:
        results.silent_s = await boot_all(again, CONCURRENCY)
        await asyncio.sleep(LINGER)
        results.silent_extra_sockets = server_sockets(server.port) - len(chargers)
    finally:
        await asyncio.gather(*(c.close() for c in silent))
        chargers[:count] = again


@dataclass(frozen=True)
class Plan:
    """How much to measure; the defaults are `make bench`'s."""

    scales: tuple[int, ...] = SCALES
    ramp_seconds: float = STEP_SECONDS
    nominal_seconds: float = NOMINAL_SECONDS
    silent: int = SILENT

    @property
    def largest(self) -> int:
        return max(self.scales)


async def _measure(kind: str, data_dir: Path, ids: list[str], plan: Plan,
                   protocol: str = OCPP16) -> Results:
    """One server: a fleet grows to each scale in turn, then load, storm and silent drop
    (2.0.1: the nominal load only)."""
    results = Results({}, {}, {})
    async with ServerProcess(kind, data_dir if kind == "strom" else None) as server:
        before = await server.stats()
        results.boot_gc_s, results.boot_gc_longest_ms = 0.0, 0.0
        chargers: list[RawCharger] = []
        try:
            booting = 0.0
            for n in sorted(plan.scales):
                batch = [RawCharger(cp_id, server.url, protocol=protocol)
                         for cp_id in ids[len(chargers):n]]
                chargers += batch
                booting += await boot_all(batch, CONCURRENCY)
                after = await server.stats()
                if after["connected"] != n:
                    raise RuntimeError(f"{kind}: {after['connected']} of {n} chargers connected")
                results.boot_s[n] = booting
                results.rss_kib[n] = (after["rss_kib"] - before["rss_kib"]) / n
                results.cpu_s[n] = after["cpu_s"] - before["cpu_s"]
                results.boot_gc_s += after["gc_s"]
                results.boot_gc_longest_ms = max(results.boot_gc_longest_ms,
                                                 after["gc_longest_ms"])
            gc.freeze()  # the fleet's own objects: the load generator's GC leaves them be
            await _nominal(server, chargers, results, plan)
            if protocol == OCPP16:
                results.steps = await ramp(chargers, RAMP_FIRST, RAMP_FACTOR, RAMP_LIMIT,
                                           plan.ramp_seconds)
                await _storm(server, chargers, results)
                await _silent_drop(server, chargers, results, min(plan.silent, plan.largest))
        except BaseException:
            print(f"{kind} server log:\n{server.log_tail()}", file=sys.stderr, flush=True)
            raise
        finally:
            await asyncio.gather(*(c.close() for c in chargers))
    return results


async def _nominal(server: ServerProcess, chargers: list[RawCharger], results: Results,
                   plan: Plan) -> None:
    nominal_rate = len(chargers) * NOMINAL_CALLS_PER_CHARGER
    cpu = (await server.stats())["cpu_s"]
    results.nominal = await load_step(chargers, nominal_rate, plan.nominal_seconds)
    after = await server.stats()
    results.nominal_cpu = (after["cpu_s"] - cpu) / results.nominal.seconds
    results.nominal_gc_longest_ms = after["gc_longest_ms"]
    results.nominal_gc_longest_cpu_ms = after["gc_longest_cpu_ms"]
    results.nominal_stall_longest_ms = after["stall_longest_ms"]


async def run(plan: Plan | None = None) -> list[Figure]:
    """Measure strom and the baseline at each scale; load and storms at the largest."""
    plan = plan or Plan()
    limit = raise_file_limit()
    # Each charger holds one socket here (two while it reconnects after a silent drop).
    if plan.largest + plan.silent + 200 > limit:
        raise RuntimeError(f"open-file limit {limit} is too low for {plan.largest} chargers")
    ids = [f"bench-{n}" for n in range(1, plan.largest + 1)]
    measured: dict[str, Results] = {}
    with tempfile.TemporaryDirectory(prefix="strom-bench-ocpp-") as tmp, quiet_gc():
        await register_chargers(Path(tmp), ids)
        for kind in KINDS:
            measured[kind] = await _measure(kind, Path(tmp), ids, plan)
        v201 = await _measure("strom", Path(tmp), ids, plan, OCPP201)
    return figures(measured["strom"], measured["baseline"], plan) + figures_201(
        v201, measured["strom"], plan)


def figures(ours: Results, base: Results, plan: Plan) -> list[Figure]:
    """The table rows: strom's value, the baseline's next to it."""
    n, silent = plan.largest, min(plan.silent, plan.largest)
    rows: list[Figure] = []
    for size in plan.scales:
        rows += [
            Figure("ocpp", f"{size} chargers: all booted", ours.boot_s[size], "s",
                   base.boot_s[size], f"one fleet growing to {n}, {CONCURRENCY} handshakes "
                   "in flight; connect, BootNotification, StatusNotification"),
            Figure("ocpp", f"{size} chargers: server RSS per charger", ours.rss_kib[size],
                   "KiB", base.rss_kib[size]),
            Figure("ocpp", f"{size} chargers: server CPU to boot all", ours.cpu_s[size], "s",
                   base.cpu_s[size]),
        ]
    rows.append(Figure("ocpp", f"booting {n}: server paused by GC", ours.boot_gc_s, "s",
                       base.boot_gc_s, f"longest pause: strom {ours.boot_gc_longest_ms:.0f} ms, "
                       f"baseline {base.boot_gc_longest_ms:.0f} ms"))
    assert ours.nominal and base.nominal and ours.steps is not None and base.steps is not None
    nominal = (f"{n} chargers, 1 MeterValues/10 s + 1 Heartbeat/300 s each "
               f"({ours.nominal.offered:.0f} calls/s)")
    rows += [
        Figure("ocpp", "nominal load: p50 latency", ours.nominal.p50_ms, "ms",
               base.nominal.p50_ms, nominal),
        Figure("ocpp", "nominal load: p99 latency", ours.nominal.p99_ms, "ms",
               base.nominal.p99_ms, nominal),
        Figure("ocpp", "nominal load: server CPU", ours.nominal_cpu * 100, "% core",
               base.nominal_cpu * 100, nominal),
        Figure("ocpp", "nominal load: longest server GC pause", ours.nominal_gc_longest_ms,
               "ms", base.nominal_gc_longest_ms,
               f"{nominal}; in CPU time: strom {ours.nominal_gc_longest_cpu_ms:.1f} ms, "
               f"baseline {base.nominal_gc_longest_cpu_ms:.1f} ms"),
        Figure("ocpp", f"calls/s with p99 <= {P99_LIMIT_MS:.0f} ms ({n} chargers)",
               _best(ours.steps), "calls/s", _best(base.steps),
               f"strom {_ramp_note(ours.steps)}; baseline {_ramp_note(base.steps)}"),
        Figure("ocpp", f"reconnect storm: all {n} back", ours.storm_s, "s", base.storm_s,
               f"all drop at once (no close), reconnect with {CONCURRENCY} in flight"),
        Figure("ocpp", "reconnect storm: chargers the server counts", ours.storm_connected,
               "chargers", base.storm_connected, f"of {n}"),
        Figure("ocpp", "reconnect storm: zombie sockets", ours.storm_extra_sockets, "sockets",
               base.storm_extra_sockets, "server sockets beyond one per charger"),
        Figure("ocpp", f"silent drop of {silent}: all back", ours.silent_s, "s", base.silent_s,
               "old sockets never answer again; the server must replace them"),
        Figure("ocpp", f"silent drop of {silent}: zombie sockets", ours.silent_extra_sockets,
               "sockets", base.silent_extra_sockets, f"still open {LINGER:g} s after all are back"),
    ]
    return rows


def figures_201(v201: Results, v16: Results, plan: Plan) -> list[Figure]:
    """strom with the fleet on OCPP 2.0.1; the baseline column is strom with it on 1.6."""
    n = plan.largest
    assert v201.nominal and v16.nominal
    same = "baseline column: strom with the same fleet on OCPP 1.6"
    nominal = (f"{n} chargers, 1 MeterValues/10 s + 1 Heartbeat/300 s each; {same}")
    return [
        Figure("ocpp", f"OCPP 2.0.1: {n} chargers: all booted", v201.boot_s[n], "s",
               v16.boot_s[n], f"connect, BootNotification, StatusNotification; {same}"),
        Figure("ocpp", f"OCPP 2.0.1: {n} chargers: server RSS per charger", v201.rss_kib[n],
               "KiB", v16.rss_kib[n], same),
        Figure("ocpp", "OCPP 2.0.1: nominal load: p50 latency", v201.nominal.p50_ms, "ms",
               v16.nominal.p50_ms, nominal),
        Figure("ocpp", "OCPP 2.0.1: nominal load: p99 latency", v201.nominal.p99_ms, "ms",
               v16.nominal.p99_ms, nominal),
        Figure("ocpp", "OCPP 2.0.1: nominal load: server CPU", v201.nominal_cpu * 100,
               "% core", v16.nominal_cpu * 100, nominal),
        Figure("ocpp", "OCPP 2.0.1: nominal load: longest server loop stall",
               v201.nominal_stall_longest_ms, "ms", v16.nominal_stall_longest_ms,
               f"{nominal}; a GC pause, a long callback or the scheduler's wait"),
    ]


def _best(steps: list[Step]) -> float:
    best = sustained(steps)
    return best.achieved if best else 0.0


def _ramp_note(steps: list[Step]) -> str:
    return ", ".join(f"{s.offered:.0f}/s→p99 {s.p99_ms:.0f} ms" for s in steps)
