"""Serve an ASGI app with uvicorn inside strom's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn

from strom.errors import UserError


class _EmbeddedServer(uvicorn.Server):
    # strom owns the process signals; uvicorn must not take them over.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_tcp(host: str, port: int, what: str, setting: str) -> socket.socket:
    """Bind a listening socket, or fail with a message that says which setting to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it small replies wait ~40 ms for Nagle.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen for {what} on {host}:{port} ({exc.strerror}); "
                        f"set {setting} to a free port") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class HttpServer:
    """uvicorn on a socket bound beforehand, so the real port is known (also for port 0)."""

    def __init__(self, app: object, host: str, port: int) -> None:
        self._sock = bind_tcp(host, port, "HTTP", "[http] port / STROM_HTTP_PORT")
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        # proxy_headers off: uvicorn would take X-Forwarded-For from any loopback peer as the
        # client address, so a local client could pose as anyone; strom reads a proxy's header
        # only where configured (`[http] client_address_header`, strom/web/rate_limits.py).
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=3, proxy_headers=False)
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="http")
        while not self._server.started:
            if self._task.done():
                await self._task  # surfaces the start-up error
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._sock.close()
