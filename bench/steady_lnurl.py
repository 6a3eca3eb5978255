"""LNURL callbacks in alternating trials: strom's server in its own process against a bare route.

Two child processes pinned to the server core (bench/lnurl_server.py): strom (dev wallet,
`chargers` registered and connected from here) and the bare Starlette route with a constant
answer on the same HTTP server class. This process, pinned to the other core, sends the
callbacks over keep-alive connections with a light client (bench/http_load.py). strom signs
its invoices in a worker process (strom/lightning/signing.py) that may run on either core,
as on a server with a core to spare (pinned to the load generator's core alone it waited
behind the other processes there and served fewer). Per trial: callbacks/s,
p50 and p99, the server's CPU per callback (from /proc: its loop process, and with its
signing workers); the client's CPU per request beside it shows that the load generator kept
up.

    python -m bench.steady_lnurl [--profile OUT.prof]   # a short run alone; OUT: strom's
                                                        # cProfile over one trial
    python -m bench.steady_lnurl --baseline strom-loop-signing  # against strom signing on
                                                                # its loop
    python -m bench.steady_lnurl --baseline strom --against DIR  # against the strom of
                                                    # another checkout (`git archive main`)

`run()` gives the wide catalogue's figures (`python -m bench`): one trial of each side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.chargers import RawCharger, boot_all
from bench.figures import Figure, percentile
from bench.http_load import HttpLoadError, get_all
from bench.money_path import AMOUNT_MSAT
from bench.ocpp_server import ServerProcess, register_chargers
from bench.steady import Trial, Watch, cores, measured, pin, process_cpu_seconds

CONNECTIONS = 20
CHARGERS = 20
WARM_UP = 40
CALLBACKS = 1_000


def children(pid: int) -> list[int]:
    """The child processes of `pid` (strom's signing workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _invoice(body: bytes) -> None:
    if b'"pr"' not in body:
        raise HttpLoadError(f"callback refused: {body[:200]!r}")


async def trials(rounds: int, callbacks: int, interleave: Callable[[int], list[str]],
                 retries: int, server_core: set[int], generator_core: set[int],
                 profile: Path | None = None, baseline: str = "bare",
                 against: Path | None = None) -> dict[str, list[Trial]]:
    """`rounds` trials of each side (keys strom, baseline); the baseline is the bare route, or
    another kind of bench/lnurl_server.py's strom (`strom-loop-signing`) answering the same
    callbacks, served from the checkout `against` if given (main against a branch). With
    `profile`, strom's cProfile of its first trial is written there."""
    ids = [f"lnurl-{n}" for n in range(1, CHARGERS + 1)]
    callback = [f"/lnurlp/{ids[i % len(ids)]}/callback?amount={AMOUNT_MSAT}"
                for i in range(callbacks)]
    bare = baseline == "bare"
    paths = {"strom": callback,
             "baseline": [f"/cb?amount={AMOUNT_MSAT}"] * callbacks if bare else callback}
    out: dict[str, list[Trial]] = {"strom": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="strom-bench-lnurl-") as tmp:
        data = {side: Path(tmp) / side for side in out}
        for side in ("strom",) if bare else tuple(out):
            await register_chargers(data[side], ids)
        async with ServerProcess("strom", data["strom"], module="bench.lnurl_server") as ours, \
                ServerProcess(baseline, None if bare else data["baseline"],
                              module="bench.lnurl_server", checkout=against) as theirs:
            servers = {"strom": ours, "baseline": theirs}
            chargers: list[RawCharger] = []
            for side, server in servers.items():
                pin(server.pid, server_core)
                if side == "strom" or not bare:
                    ocpp = (await server.line("OCPP ")).split(" ", 1)[1]
                    chargers += [RawCharger(cp_id, ocpp) for cp_id in ids]
            try:
                await boot_all(chargers, CONNECTIONS)
                for side, server in servers.items():  # connections, caches, the workers
                    await get_all(server.url, paths[side][:WARM_UP], CONNECTIONS, _invoice)
                workers = {side: children(server.pid) for side, server in servers.items()}
                for pid in workers["strom"] + workers["baseline"]:
                    pin(pid, server_core | generator_core)

                async def attempt(side: str) -> tuple[dict[str, float], Watch]:
                    server = servers[side]
                    cpu = [process_cpu_seconds(pid) for pid in workers[side]]
                    with Watch([server.pid, "self", *workers[side]]) as watch:
                        ms = await get_all(server.url, paths[side], CONNECTIONS, _invoice)
                    signing = sum(process_cpu_seconds(pid) for pid in workers[side]) - sum(cpu)
                    client_s = watch.own_cpu_s - watch.server_cpu_s - signing
                    return {"per_s": len(ms) / watch.wall_s,
                            "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
                            "loop_cpu_ms": watch.server_cpu_s / len(ms) * 1000,
                            "cpu_ms": (watch.server_cpu_s + signing) / len(ms) * 1000,
                            "client_cpu_ms": client_s / len(ms) * 1000}, watch

                for n in range(rounds):
                    for side in interleave(n):
                        profiling = profile is not None and side == "strom" and n == 0
                        if profiling:
                            await ours.send("profile")
                        out[side].append(await measured(lambda s=side: attempt(s), retries))
                        if profiling:
                            await ours.send(f"profile {profile}")
                            await ours.line("{")
            finally:
                await asyncio.gather(*(c.close() for c in chargers))
    return out


async def run(callbacks: int = CALLBACKS) -> list[Figure]:
    """LNURL callbacks/s, p99 and server CPU per callback, strom against the bare route."""
    got = await trials(1, callbacks, lambda n: ["strom", "baseline"], 0, *cores())
    strom, bare = got["strom"][0].values, got["baseline"][0].values
    note = (f"{callbacks} callbacks over {CONNECTIONS} keep-alive connections, server in its "
            "own process; baseline: constant answer, bare Starlette route")
    return [
        Figure("money", "LNURL callbacks (invoice + session)", strom["per_s"], "per s",
               bare["per_s"], note),
        Figure("money", "LNURL callback p99", strom["p99_ms"], "ms", bare["p99_ms"], note),
        Figure("money", "server CPU per LNURL callback (with signing)", strom["cpu_ms"], "ms",
               bare["cpu_ms"], "the server process and its invoice-signing worker"),
    ]


def main() -> None:
    from bench.steady import row
    from bench.trials import interleave

    parser = argparse.ArgumentParser(prog="python -m bench.steady_lnurl")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callbacks", type=int, default=300)
    parser.add_argument("--profile", type=Path, default=None,
                        help="write strom's cProfile of its first trial here")
    parser.add_argument("--baseline", default="bare",
                        choices=["bare", "strom", "strom-loop-signing", "strom-uvloop",
                                 "strom-2-workers", "strom-1-worker"],
                        help="the bare route, strom as this checkout serves it (with "
                        "--against), strom signing on its loop (what the signing workers buy), "
                        "on uvloop, or with two or one signing workers")
    parser.add_argument("--against", type=Path, default=None,
                        help="serve the baseline (a strom kind) from this other checkout, "
                        "e.g. an export of main")
    args = parser.parse_args()
    if args.against is not None and args.baseline == "bare":
        parser.error("--against serves a strom kind: name one with --baseline (e.g. strom)")
    server_core, generator_core = cores()
    pin("self", generator_core)
    got = asyncio.run(trials(args.rounds, args.callbacks, interleave, 1, server_core,
                             generator_core, args.profile, args.baseline, args.against))
    name = f"{args.baseline} of {args.against}" if args.against else args.baseline
    for key in ("per_s", "p50_ms", "p99_ms", "loop_cpu_ms", "cpu_ms", "client_cpu_ms"):
        r = row("lnurl", key, "", key, got["strom"], got["baseline"])
        print(json.dumps({"figure": key, "strom": r.samples["strom"],
                          name: r.samples["baseline"], "ratio": r.ratio}))
    # How much of the machine others took in each trial (cores): throughput reads only where
    # this stayed low; the CPU figures hold either way.
    print(json.dumps({"others_cores": {side: [round(t.others, 2) for t in got[side]]
                                       for side in ("strom", "baseline")},
                      "disturbed": r.disturbed}))


if __name__ == "__main__":
    main()
