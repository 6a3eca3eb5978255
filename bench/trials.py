"""The figures that hold still: `python -m bench.trials [--quick]` (`make bench-quick`).

strom and its baseline in alternating rounds (A B, B A, …), server and load generator on
different cores, CPU per call beside latency, disturbed trials re-run (bench/steady.py).
Writes bench/results/trials[-quick].json and .md (the table of docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ocpp.messages import Call, validate_payload

from bench import steady_lnurl, steady_money
from bench.chargers import meter_values
from bench.figures import machine_facts
from bench.ocpp_server import raise_file_limit, register_chargers
from bench.steady import (
    DISTURBED_CORES,
    RETRIES,
    Row,
    Trial,
    Watch,
    cores,
    markdown,
    measured,
    pin,
    row,
)
from bench.steady_ocpp import OcppPlan, trial
from strom.ocpp.validation import validate

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Plan:
    rounds: int
    ocpp: OcppPlan
    callbacks: int
    sessions: int
    retries: int  # re-runs of a disturbed trial
    invoices: int


PLANS = {
    "quick": Plan(rounds=3, ocpp=OcppPlan(chargers=200, rate=300.0, seconds=2.5),
                  callbacks=300, sessions=20, retries=1, invoices=100),
    "full": Plan(rounds=5, ocpp=OcppPlan(chargers=2_000, rate=1_000.0, seconds=8.0),
                 callbacks=1_000, sessions=100, retries=RETRIES, invoices=400),
}


def interleave(n: int) -> list[str]:
    """Round n's order: strom first in even rounds, the baseline first in odd ones, so a
    drift in outside load during a run favours neither side."""
    return ["strom", "baseline"] if n % 2 == 0 else ["baseline", "strom"]


async def _ocpp(plan: Plan, server_core: set[int],
                kinds: dict[str, str] | None = None) -> dict[str, list[Trial]]:
    """OCPP trials; `kinds` names the server of each side (default strom and the baseline)."""
    kinds = kinds or {"strom": "strom", "baseline": "baseline"}
    ids = [f"bench-{n}" for n in range(1, plan.ocpp.chargers + 1)]
    out: dict[str, list[Trial]] = {"strom": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="strom-bench-trials-") as tmp:
        store, work = Path(tmp) / "store", Path(tmp) / "work"
        work.mkdir()
        await register_chargers(store, ids)
        for n in range(plan.rounds):
            for side in interleave(n):
                kind = kinds[side]
                print(f"  ocpp round {n + 1}: {kind}", file=sys.stderr, flush=True)
                out[side].append(await trial(kind, None if kind == "baseline" else store, work,
                                             ids, plan.ocpp, server_core, plan.retries))
    return out


async def _validation(rounds: int, count: int, retries: int) -> dict[str, list[Trial]]:
    """CPU per MeterValues payload checked: strom's compiled check against the library's
    validate_payload (jsonschema in the default executor), what strom used before."""
    payload = meter_values(1234.5, 7400.0)
    sides = {"strom": validate, "baseline": validate_payload}
    out: dict[str, list[Trial]] = {"strom": [], "baseline": []}
    for n in range(rounds):
        for side in interleave(n):
            async def attempt(side: str = side) -> tuple[dict[str, float], Watch]:
                with Watch(["self"]) as watch:
                    for _ in range(count):
                        await sides[side](Call("1", "MeterValues", payload), "1.6")
                return {"cpu_ms": watch.server_cpu_s / count * 1000}, watch

            out[side].append(await measured(attempt, retries))
    return out


async def run(plan: Plan) -> tuple[list[Row], dict[str, list[Trial]]]:
    """Every trial of the plan; the rows of the table and the trials they came from."""
    raise_file_limit()
    server_core, generator_core = cores()
    pin("self", server_core)
    validation = await _validation(plan.rounds, plan.invoices * 20, plan.retries)
    pin("self", generator_core)
    ocpp = await _ocpp(plan, server_core)
    print("  lnurl callbacks", file=sys.stderr, flush=True)
    lnurl = await steady_lnurl.trials(plan.rounds, plan.callbacks, interleave, plan.retries,
                                      server_core, generator_core)
    # The money path runs server and client in this process: one core for all of it.
    pin("self", server_core)
    print("  money path", file=sys.stderr, flush=True)
    money = await steady_money.trials(plan.rounds, plan.sessions, interleave, plan.retries)
    pay = f"{plan.sessions} payments settled at once"
    rows = [
        row("ocpp", "CPU per MeterValues payload checked", "ms", "cpu_ms", validation["strom"],
            validation["baseline"], note="compiled schema on the loop; baseline: the ocpp "
            "library's validate_payload (jsonschema in a thread), as before"),
        *_ocpp_rows(plan, ocpp),
        row("lnurl", "LNURL callbacks (invoice + session)", "per s", "per_s", lnurl["strom"],
            lnurl["baseline"], note=f"{plan.callbacks} callbacks over {steady_lnurl.CONNECTIONS} "
            "keep-alive connections; server in its own process; baseline: the bare route's "
            "constant answer"),
        row("lnurl", "LNURL callback p50", "ms", "p50_ms", lnurl["strom"], lnurl["baseline"],
            note="same trials"),
        row("lnurl", "LNURL callback p99", "ms", "p99_ms", lnurl["strom"], lnurl["baseline"],
            note="same trials"),
        row("lnurl", "server CPU per LNURL callback, loop", "ms", "loop_cpu_ms",
            lnurl["strom"], lnurl["baseline"], note="the server process (loop and aiosqlite "
            "threads), its core to itself"),
        row("lnurl", "server CPU per LNURL callback, with signing", "ms", "cpu_ms",
            lnurl["strom"], lnurl["baseline"], note="the process and its invoice-signing worker "
            "(free to run on either core)"),
        row("lnurl", "load generator CPU per request", "ms", "client_cpu_ms", lnurl["strom"],
            lnurl["baseline"], note="bench/http_load.py: it keeps up"),
        row("money", "paid → RemoteStart, p50", "ms", "p50_ms", money["paid"], money["direct"],
            note=pay + "; baseline: bare RemoteStart call"),
        row("money", "paid → RemoteStart, p99", "ms", "p99_ms", money["paid"], money["direct"],
            note=pay + "; baseline: bare RemoteStart call"),
        row("money", "CPU per paid session", "ms", "cpu_ms", money["paid"], money["direct"],
            note="invoice (2 HTTP calls), settle, start; baseline: the bare start alone"),
    ]
    trials = ({f"validation.{k}": v for k, v in validation.items()}
              | {f"ocpp.{k}": v for k, v in ocpp.items()}
              | {f"lnurl.{k}": v for k, v in lnurl.items()}
              | {f"money.{k}": v for k, v in money.items()})
    return rows, trials


def _ocpp_rows(plan: Plan, ocpp: dict[str, list[Trial]]) -> list[Row]:
    o = plan.ocpp
    load = f"{o.chargers} chargers, {o.rate:.0f} calls/s offered for {o.seconds:g} s"
    return [
        row("ocpp", "server CPU per 1,000 calls", "CPU-s", "cpu_per_1000",
            ocpp["strom"], ocpp["baseline"], note=load + "; MeterValues + Heartbeat"),
        row("ocpp", "p50 latency", "ms", "p50_ms", ocpp["strom"], ocpp["baseline"], note=load),
        row("ocpp", "p99 latency", "ms", "p99_ms", ocpp["strom"], ocpp["baseline"], note=load),
        row("ocpp", "server CPU per charger booted", "ms", "boot_cpu_ms", ocpp["strom"],
            ocpp["baseline"], note="connect, BootNotification, StatusNotification"),
    ]


async def ocpp_rows(plan: Plan) -> tuple[list[Row], dict[str, list[Trial]]]:
    """Only the OCPP server's trials, strom against its baseline (`--ocpp`: ~1 min quick)."""
    raise_file_limit()
    server_core, generator_core = cores()
    pin("self", generator_core)
    ocpp = await _ocpp(plan, server_core)
    return _ocpp_rows(plan, ocpp), {f"ocpp.{k}": v for k, v in ocpp.items()}


async def uvloop_rows(plan: Plan) -> tuple[list[Row], dict[str, list[Trial]]]:
    """strom's OCPP server on uvloop against the same on asyncio's loop (an evaluation)."""
    raise_file_limit()
    server_core, generator_core = cores()
    pin("self", generator_core)
    ocpp = await _ocpp(plan, server_core, {"strom": "strom-uvloop", "baseline": "strom"})
    load = f"{plan.ocpp.chargers} chargers, {plan.ocpp.rate:.0f} calls/s for {plan.ocpp.seconds:g} s"
    rows = [row("uvloop", name, unit, key, ocpp["strom"], ocpp["baseline"],
                note=load + "; baseline: strom on asyncio's loop")
            for name, unit, key in (("server CPU per 1,000 calls", "CPU-s", "cpu_per_1000"),
                                    ("p50 latency", "ms", "p50_ms"),
                                    ("p99 latency", "ms", "p99_ms"),
                                    ("server CPU per charger booted", "ms", "boot_cpu_ms"))]
    return rows, {f"uvloop.{k}": v for k, v in ocpp.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trials")
    parser.add_argument("--quick", action="store_true", help="the < 2 min plan")
    parser.add_argument("--uvloop", action="store_true",
                        help="only evaluate uvloop: strom's OCPP server on it against asyncio")
    parser.add_argument("--ocpp", action="store_true",
                        help="only the OCPP server's rows (CPU per call and per boot, latency)")
    parser.add_argument("--out", type=Path, default=None, help="results file (.json)")
    args = parser.parse_args()
    name = "quick" if args.quick else "full"
    plan = PLANS[name]
    stem = "trials-uvloop" if args.uvloop else "trials-ocpp" if args.ocpp else "trials"
    out = args.out or RESULTS / (f"{stem}-quick.json" if args.quick else f"{stem}.json")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows, trials = asyncio.run(uvloop_rows(plan) if args.uvloop else ocpp_rows(plan)
                               if args.ocpp else run(plan))
    took = time.perf_counter() - started
    table = markdown(rows)
    print(table)
    others = sorted(t.others for ts in trials.values() for t in ts)
    summary = (f"{name} plan, {took:.0f} s; 1-min load average {load_before:.1f} before, "
               f"{os.getloadavg()[0]:.1f} after; other processes took "
               f"{others[len(others) // 2]:.2f} cores (median over trials, max "
               f"{others[-1]:.2f}); a trial is disturbed above {DISTURBED_CORES} cores and "
               f"re-run up to {plan.retries} times")
    print("\n" + summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": machine_facts(), "measured_at": time.time(), "plan": name,
        "seconds": round(took, 1), "summary": summary, "rows": [r.to_json() for r in rows],
        "trials": {k: [asdict(t) for t in v] for k, v in trials.items()}}, indent=2) + "\n")
    out.with_suffix(".md").write_text(table + "\n\n" + summary + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
