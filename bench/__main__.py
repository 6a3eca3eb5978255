"""Run every benchmark, print a table, write bench/results/latest.json.

Each module in BENCHMARKS has `async def run() -> list[Figure]`; each is bounded in time and
traffic goes to 127.0.0.1 only. `--out PATH` writes elsewhere; `--markdown` prints a results
file as the Markdown table of docs/performance.md and runs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
from pathlib import Path

from bench.figures import Figure, load_average, machine_facts

BENCHMARKS = [
    "bench.wallet",
    "bench.relay",
    "bench.nostr",
    "bench.money_path",
    "bench.steady_lnurl",
    "bench.ocpp",
    "bench.passthrough",
]
RESULTS = Path(__file__).parent / "results" / "latest.json"


def _markdown(results: dict[str, object]) -> str:
    """The figures of a results file as a Markdown table (for docs/performance.md)."""
    lines = ["| group | figure | value | unit | baseline | ratio | note |",
             "| --- | --- | ---: | --- | ---: | ---: | --- |"]
    for f in results["figures"]:  # type: ignore[attr-defined]
        base = "" if f["baseline"] is None else f"{f['baseline']:,.1f}"
        ratio = "" if f["ratio"] is None else f"{f['ratio']:.2f}"
        note = f["note"].replace("|", r"\|")
        lines.append(f"| {f['group']} | {f['name']} | {f['value']:,.1f} | {f['unit']} | {base} "
                     f"| {ratio} | {note} |")
    return "\n".join(lines)


def _table(figures: list[Figure]) -> str:
    lines = [f"{'group':<10} {'figure':<46} {'value':>12} {'unit':<10} {'baseline':>10} {'ratio':>6}"]
    for f in figures:
        base = f"{f.baseline:>10.1f}" if f.baseline is not None else " " * 10
        ratio = f"{f.ratio:>6.2f}" if f.ratio is not None else ""
        lines.append(f"{f.group:<10} {f.name:<46} {f.value:>12.1f} {f.unit:<10} {base} {ratio}")
    return "\n".join(lines)


async def _run(selected: list[str]) -> list[Figure]:
    figures: list[Figure] = []
    for name in selected:
        module = importlib.import_module(name)
        started = time.perf_counter()
        print(f"running {name} …", file=sys.stderr, flush=True)
        figures += await module.run()
        print(f"  {name} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("only", nargs="*", help="run only these modules (e.g. bench.money_path)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="where to write the results (default bench/results/latest.json)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the results file (--out) as a Markdown table; run nothing")
    args = parser.parse_args()
    if args.markdown:
        print(_markdown(json.loads(args.out.read_text())))
        return
    load_before = load_average()
    started = time.perf_counter()
    figures = asyncio.run(_run(args.only or BENCHMARKS))
    took = time.perf_counter() - started
    load = {"before": load_before, "after": load_average()}
    print(_table(figures))
    print(f"\n{len(figures)} figures in {took:.0f} s; 1-minute load average before "
          f"{load['before']}, after {load['after']} (other work on the machine skews figures)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine_facts(), "measured_at": time.time(),
                                   "seconds": round(took, 1), "load_average": load,
                                   "modules": args.only or BENCHMARKS,
                                   "figures": [f.to_json() for f in figures]}, indent=2) + "\n")
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
