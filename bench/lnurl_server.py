"""The LNURL server under test in a child process of its own (bench/steady_lnurl.py).

    python -m bench.lnurl_server strom DATA_DIR   # StromApp, dev wallet, the rate guard open
    python -m bench.lnurl_server strom-loop-signing DATA_DIR  # the same, invoices signed on
                                                              # the loop (signing_workers 0)
    python -m bench.lnurl_server strom-uvloop DATA_DIR  # on uvloop, as `strom run`
    python -m bench.lnurl_server strom-2-workers DATA_DIR  # two signing workers
    python -m bench.lnurl_server strom-1-worker DATA_DIR   # one (the default on 2 cores
                                                           # was one per core beyond the loop's)
    python -m bench.lnurl_server bare             # a bare Starlette route: a constant answer

It prints `URL <http base>` (strom also `OCPP <ws url>`, where its chargers connect), then
reads commands on stdin, one a line, as bench/ocpp_server.py: `stats` → a JSON line,
`profile` → cProfile on, `profile PATH` → off and its stats written to PATH, `quit`.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench.money_path import bare_app, bench_settings
from bench.ocpp_server import PAUSES, own_stats, raise_file_limit


async def _serve_commands() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    profile: cProfile.Profile | None = None
    while line := (await reader.readline()).decode().strip():
        command, _, argument = line.partition(" ")
        if command == "quit":
            return
        if command == "stats":
            print(json.dumps(own_stats()), flush=True)
        elif command == "profile" and not argument:
            # The loop thread's CPU time, not the wall clock: on a shared core the wall clock
            # charges a call with whatever ran meanwhile (a hop to aiosqlite's thread showed
            # as ~130 µs in `put_nowait`).
            profile = cProfile.Profile(time.thread_time)
            profile.enable()
        elif command == "profile" and profile is not None:
            profile.disable()
            profile.dump_stats(argument)
            profile = None
            print("{}", flush=True)


async def _run_strom(data_dir: Path, signing_workers: int | None = None) -> None:
    from strom.app import StromApp

    settings = bench_settings()
    if signing_workers is not None:
        settings.lightning.signing_workers = signing_workers
    async with StromApp(settings, data_dir) as app:
        assert app.services is not None and app.services.central_system is not None
        print(f"URL {app.settings.public_url}", flush=True)
        print(f"OCPP {app.services.central_system.url}", flush=True)
        await _serve_commands()


async def _run_bare() -> None:
    from strom.http_server import HttpServer

    server = HttpServer(bare_app(), "127.0.0.1", 0)
    await server.start()
    try:
        print(f"URL http://127.0.0.1:{server.port}", flush=True)
        await _serve_commands()
    finally:
        await server.close()


# Each kind's server, from the arguments after the kind.
KINDS: dict[str, Callable[[list[str]], Coroutine[Any, Any, None]]] = {
    "strom": lambda args: _run_strom(Path(args[0])),
    "strom-loop-signing": lambda args: _run_strom(Path(args[0]), signing_workers=0),
    "strom-uvloop": lambda args: _run_strom(Path(args[0])),  # as `strom run` serves
    "strom-2-workers": lambda args: _run_strom(Path(args[0]), signing_workers=2),
    "strom-1-worker": lambda args: _run_strom(Path(args[0]), signing_workers=1),
    "bare": lambda args: _run_bare(),
}


def main() -> None:
    kind, *args = sys.argv[1:]
    if kind not in KINDS:
        raise SystemExit(f"unknown server kind {kind!r}; one of {sorted(KINDS)}")
    raise_file_limit()
    PAUSES.install()
    if kind == "strom-uvloop":
        import uvloop

        uvloop.run(KINDS[kind](args))
    else:
        asyncio.run(KINDS[kind](args))


if __name__ == "__main__":
    main()
