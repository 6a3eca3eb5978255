"""The central system under test, in a child process of its own.

Its memory and CPU are then its own (read from /proc by the child itself), and the load
generator does not share its event loop. The parent talks to it over stdin/stdout, one line
each way: `stats` → a JSON object, `collect` → the CPU time of one full garbage collection,
`quit` → it stops.

    python -m bench.ocpp_server strom DATA_DIR     # the full StromApp (store, sessions, relay, bots)
    python -m bench.ocpp_server strom-uvloop DATA_DIR  # the same on uvloop's event loop
    python -m bench.ocpp_server baseline           # the ocpp library's example central system
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from bench.baseline_cs import BaselineCentralSystem

READY_TIMEOUT = 60.0
LOG_TAIL = 40


def raise_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit; returns the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class GcPauses:
    """How long the garbage collector stopped this process, per `gc.callbacks`: wall time, and
    the longest in the thread's CPU time (on a shared machine a collection's wall time is
    mostly the scheduler's: 160 ms for 8 ms of CPU was seen)."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self.longest_s = 0.0
        self.longest_cpu_s = 0.0
        self.full = 0
        self._started = 0.0
        self._started_cpu = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            self._started_cpu = time.thread_time()
            return
        pause = time.perf_counter() - self._started
        self.total_s += pause
        self.longest_s = max(self.longest_s, pause)
        self.longest_cpu_s = max(self.longest_cpu_s, time.thread_time() - self._started_cpu)
        self.full += info["generation"] == 2

    def take(self) -> dict[str, float]:
        """Totals since the last call."""
        taken = {"gc_s": self.total_s, "gc_longest_ms": self.longest_s * 1000,
                 "gc_longest_cpu_ms": self.longest_cpu_s * 1000, "gc_full": self.full}
        self.total_s, self.longest_s, self.longest_cpu_s, self.full = 0.0, 0.0, 0.0, 0
        return taken


PAUSES = GcPauses()


class LoopStalls:
    """The longest time the event loop ran no ready callback: a task wakes every `EVERY`
    seconds and records how late it woke. Besides GC pauses this catches any long callback
    (the GC keeper's count of its frozen set, which no `gc.callbacks` sees, was one) and, on
    a shared machine, the scheduler's waits."""

    EVERY = 0.02

    def __init__(self) -> None:
        self.longest_s = 0.0

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.EVERY)
            self.longest_s = max(self.longest_s, loop.time() - started - self.EVERY)

    def take(self) -> dict[str, float]:
        """The longest stall since the last call."""
        taken, self.longest_s = self.longest_s, 0.0
        return {"stall_longest_ms": taken * 1000}


STALLS = LoopStalls()


def own_stats() -> dict[str, float]:
    """This process's resident memory (KiB), CPU seconds (user + system) and GC pauses."""
    rss = 0
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    times = os.times()
    return {"rss_kib": rss, "cpu_s": times.user + times.system, **PAUSES.take(),
            **STALLS.take()}


class _Counted(Protocol):
    def connected_count(self) -> int: ...


async def _serve_commands(server: _Counted) -> None:
    watching = asyncio.create_task(STALLS.watch())
    try:
        await _commands(server)
    finally:
        watching.cancel()


async def _commands(server: _Counted) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "quit":
            return
        if line == "stats":
            print(json.dumps({**own_stats(), "connected": server.connected_count()}), flush=True)
        if line == "collect":  # one full collection now: what it costs at this fleet size
            started = time.thread_time()
            gc.collect()
            print(json.dumps({"collect_cpu_ms": (time.thread_time() - started) * 1000}),
                  flush=True)


async def _run_strom(data_dir: Path) -> None:
    from strom.app import StromApp
    from strom.config import Settings
    from strom.gc_keeper import short_gc_pauses
    from strom.logsetup import setup_logging

    setup_logging()  # as `strom run`: INFO lines for every connect and disconnect
    settings = Settings.model_validate({"http": {"port": 0}, "ocpp": {"port": 0},
                                        "relay": {"port": 0}})
    async with StromApp(settings, data_dir) as app, short_gc_pauses():  # as `strom run`
        assert app.services is not None and app.services.central_system is not None
        central = app.services.central_system
        print(f"URL {central.url}", flush=True)
        await _serve_commands(central)


async def _run_baseline() -> None:
    central = BaselineCentralSystem()
    await central.start()
    try:
        print(f"URL {central.url}", flush=True)
        await _serve_commands(central)
    finally:
        await central.close()


def main() -> None:
    raise_file_limit()
    PAUSES.install()
    kind = sys.argv[1]
    if kind == "strom":
        asyncio.run(_run_strom(Path(sys.argv[2])))
    elif kind == "strom-uvloop":  # the same server on uvloop's event loop (bench.trials --uvloop)
        import uvloop

        uvloop.run(_run_strom(Path(sys.argv[2])))
    elif kind == "baseline":
        asyncio.run(_run_baseline())
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


class ServerProcess:
    """The parent's handle: `async with ServerProcess("strom", data_dir) as server`; `module`
    names another server module speaking the same lines (bench/lnurl_server.py)."""

    def __init__(self, kind: str, data_dir: Path | None = None, *,
                 module: str = "bench.ocpp_server", checkout: Path | None = None) -> None:
        self.kind = kind
        self._data_dir = data_dir
        self._module = module
        # Another checkout of strom to serve from (`bench.boot_storm`: main against a branch).
        self._checkout = checkout or Path(__file__).parent.parent
        self._proc: asyncio.subprocess.Process | None = None
        self._log: deque[str] = deque(maxlen=LOG_TAIL)
        self._drain: asyncio.Task[None] | None = None
        self.url = ""
        self.port = 0

    async def __aenter__(self) -> ServerProcess:
        args = [sys.executable, "-m", self._module, self.kind]
        if self._data_dir is not None:
            args.append(str(self._data_dir))
        # The checkout on the import path of the server's own children too (strom's signing
        # workers run with `-P`, no working directory on it).
        env = {**os.environ, "PYTHONPATH": str(self._checkout)}
        self._proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=self._checkout, env=env)
        # The server logs a line per connection: read them all, keep the last few.
        self._drain = asyncio.create_task(self._keep_log(self._proc.stderr))
        try:
            line = await asyncio.wait_for(self.line("URL "), READY_TIMEOUT)
        except (TimeoutError, EOFError):
            await self._stop()
            raise RuntimeError(f"{self.kind} server did not start:\n{self.log_tail()}") from None
        self.url = line.split(" ", 1)[1]
        self.port = int(self.url.split(":")[2].split("/")[0])
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._stop()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def send(self, command: str) -> None:
        """One command line to the server (`stats`, `quit`, others its module knows)."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(command.encode() + b"\n")
        await self._proc.stdin.drain()

    async def stats(self) -> dict[str, Any]:
        """RSS (KiB), CPU seconds, connected chargers (as the server counts them), GC pauses
        and the longest loop stall since the last call (`gc_s`, `gc_longest_ms`,
        `gc_longest_cpu_ms`, `gc_full`, `stall_longest_ms`)."""
        await self.send("stats")
        return json.loads(await asyncio.wait_for(self.line("{"), 30))  # type: ignore[no-any-return]

    async def collect(self) -> float:
        """CPU milliseconds of one full garbage collection in the server, run now."""
        await self.send("collect")
        return float(json.loads(await asyncio.wait_for(self.line("{"), 30))["collect_cpu_ms"])

    def log_tail(self) -> str:
        """The server's last log lines (for an error message)."""
        return "\n".join(self._log)

    async def _keep_log(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        while line := await stream.readline():
            self._log.append(line.decode(errors="replace").rstrip())

    async def line(self, prefix: str) -> str:
        """The next line of ours on the server's stdout (anything else printed there is not)."""
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            raw = await self._proc.stdout.readline()
            if not raw:
                raise EOFError(f"{self.kind} server exited")
            line = raw.decode(errors="replace").strip()
            if line.startswith(prefix):
                return line

    async def _stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(b"quit\n")
                await self._proc.stdin.drain()
                await asyncio.wait_for(self._proc.wait(), 30)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                self._proc.kill()
                await self._proc.wait()
        if self._drain is not None:
            await self._drain
            self._drain = None


async def register_chargers(data_dir: Path, ids: list[str]) -> None:
    """Add the chargers to a strom store, as `strom cp add` would (one transaction each)."""
    from strom.paths import database_path, ensure_data_dir
    from strom.store.charge_points import ChargePointRepository
    from strom.store.db import Database

    db = await Database.open(database_path(ensure_data_dir(data_dir)))
    try:
        repo = ChargePointRepository(db)
        for cp_id in ids:
            await repo.add(cp_id, name=cp_id, lat=52.52, lon=13.40)
    finally:
        await db.close()


if __name__ == "__main__":
    main()
