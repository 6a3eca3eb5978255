"""Relays strom does not own, for the tests of issue 19 ("real nostr").

`independent_relay` runs nostr-relay (PyPI `nostr-relay`, a relay implementation of its own:
falcon, SQLAlchemy, its own validators and rate limiter; a dev dependency) as a separate
process on loopback, with the limits public relays commonly set: content at most 4,096
characters (its default, "invalid: 280 characters should be enough for anybody") and an
optional EVENT rate per client address ("rate-limited: slow down"). (NIP-42 AUTH refusals are
played by the relay in tests/nostr/test_refusals.py.)

`silent_relay` accepts a connection and every message and answers nothing: no `OK`, no
`EOSE` — the relay that stalls.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import websockets
from websockets.asyncio.server import ServerConnection, serve

from tests.e2e.processes import free_port

STARTUP_SECONDS = 30.0
PORT_ATTEMPTS = 3


def _config(directory: Path, port: int, events_per_second: int | None) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "storage:",
        f"  sqlalchemy.url: sqlite+aiosqlite:///{directory / 'relay.sqlite3'}",
        "  validators:",
        "    - nostr_relay.validators.is_not_too_large",
        "    - nostr_relay.validators.is_signed",
        "gunicorn:",
        f"  bind: 127.0.0.1:{port}",
        "  workers: 1",
        "  loglevel: warning",
        "max_event_size: 4096",
    ]
    if events_per_second is not None:
        lines += ["rate_limits:", "  ip:", f"    EVENT: {events_per_second}/s"]
    path = directory / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


async def _until_listening(url: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(STARTUP_SECONDS):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"nostr-relay exited with {process.returncode}")
            try:
                async with websockets.connect(url, open_timeout=1):
                    return
            except (OSError, websockets.WebSocketException, TimeoutError):
                await asyncio.sleep(0.1)


@asynccontextmanager
async def independent_relay(directory: Path, *,
                            events_per_second: int | None = None) -> AsyncIterator[str]:
    """nostr-relay on a free loopback port; yields its ws:// URL.

    A port found free may be taken by another process before the relay binds it (parallel
    test runs on one machine): that start is retried on a new port; any other failure to
    start raises with the relay's own last words.
    """
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        config = _config(directory, port, events_per_second)
        log = directory / "relay.log"
        binary = Path(sys.executable).with_name("nostr-relay")
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                str(binary), "-c", config, "serve", "--use-uvicorn", cwd=directory,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        url = f"ws://127.0.0.1:{port}"
        try:
            try:
                await _until_listening(url, process)
            except RuntimeError as exc:
                said = log.read_text(errors="replace")
                if "address already in use" in said.lower() and attempt + 1 < PORT_ATTEMPTS:
                    continue
                raise RuntimeError(f"{exc}: {said[-2000:]}") from None
            yield url
            return
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    async with asyncio.timeout(5):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()


@asynccontextmanager
async def silent_relay() -> AsyncIterator[str]:
    """A relay that takes everything and never answers; yields its ws:// URL."""
    async def swallow(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    async with serve(swallow, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
