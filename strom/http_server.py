"""Serve an ASGI app with uvicorn inside strom's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Generator, Sequence

import uvicorn
from starlette.types import ASGIApp

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
    """uvicorn on a socket bound beforehand, so the real port is known (also for port 0).

    The app may come later, to `start`: strom binds first, then builds what its links need
    the port for, and only then the web app (strom/app.py)."""

    def __init__(self, app: ASGIApp | None, host: str, port: int, *,
                 trusted_proxies: Sequence[str] = (), tls: ssl.SSLContext | None = None) -> None:
        what, setting = (("HTTPS", "[tls] https_port / STROM_TLS_HTTPS_PORT") if tls else
                         ("HTTP", "[http] port / STROM_HTTP_PORT"))
        self._sock = bind_tcp(host, port, what, setting)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self.scheme = "https" if tls else "http"
        self._app = app
        self._trusted_proxies = list(trusted_proxies)
        self._tls = tls
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    def _configure(self, app: ASGIApp) -> _EmbeddedServer:
        # Forwarded headers only from the proxies named in `[http] trusted_proxies`: uvicorn's
        # default would take X-Forwarded-For from any loopback peer, so a local client could
        # pose as anyone. Then `request.client` and the scheme are the proxy's client's.
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, http="h11",
                                timeout_graceful_shutdown=3,
                                proxy_headers=bool(self._trusted_proxies),
                                forwarded_allow_ips=self._trusted_proxies or None)
        config.load()
        # The listener's context, not one uvicorn makes from files: renewals swap certificates
        # in it (strom/tls/certs.py).
        config.ssl = self._tls
        return _EmbeddedServer(config)

    async def start(self, app: ASGIApp | None = None) -> None:
        """Serve `app` (or the one given at construction) on the bound socket."""
        app = app if app is not None else self._app
        if app is None:
            raise ValueError("HttpServer.start: no app to serve")
        self._server = server = self._configure(app)
        self._task = asyncio.create_task(server.serve(sockets=[self._sock]), name="http")
        while not server.started:
            if self._task.done():
                await self._task  # surfaces the start-up error
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._sock.close()
