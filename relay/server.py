"""The relay: a websocket server (NIP-01) with NIP-11 on the same port, inside the caller's
event loop. `async with Relay(path, "127.0.0.1", 0) as relay: print(relay.url)`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Collection, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Literal

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from relay.auth import normalize_url
from relay.connection import Connection
from relay.event import Event
from relay.limits import Limits
from relay.nip11 import RelayInfo, http_response, information_document
from relay.store import EventStore
from strom.errors import UserError
from strom.forwarded import trusted_networks
from strom.ratelimit import KeyedBuckets

log = logging.getLogger(__name__)

WritePolicy = Literal["open", "strom"]
PubkeySource = Callable[[], Collection[str]]


DB_FILE = "relay.sqlite3"


def database_path(data_dir: Path) -> Path:
    """The relay's own SQLite file, beside (not inside) strom's store."""
    return data_dir / DB_FILE


class RelayError(UserError):
    """The relay cannot start (its port is taken, …)."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it small frames wait ~40 ms for delayed ACKs (measured: REQ of 100 events 48 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RelayError(f"cannot listen for the nostr relay on {host}:{port} ({exc.strerror}); "
                         "set [relay] port / STROM_RELAY_PORT to a free port") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class Relay:
    """A nostr relay persisted in one SQLite file.

    write_policy "open" stores any valid event; "strom" only events whose author or a `p` tag
    is in `allowed_pubkeys()`. Events by `trusted_pubkeys()` skip the per-connection rate
    limit. Both callables are asked on every event: return a prepared set, not a new one.
    `public_url` is an extra URL clients may know the relay by (NIP-42 `relay` tag).
    """

    def __init__(self, db_path: Path, host: str = "127.0.0.1", port: int = 7777, *,
                 write_policy: WritePolicy = "open",
                 allowed_pubkeys: PubkeySource | None = None,
                 trusted_pubkeys: PubkeySource | None = None,
                 name: str = "strom relay",
                 description: str = "The nostr relay of a strom EV charging bridge.",
                 pubkey: str | None = None, contact: str | None = None,
                 public_url: str | None = None, limits: Limits | None = None,
                 purge_interval: float = 60.0, trusted_proxies: Sequence[str] = ()) -> None:
        if write_policy not in ("open", "strom"):
            raise ValueError(f"write_policy must be 'open' or 'strom', not {write_policy!r}")
        if write_policy == "strom" and allowed_pubkeys is None:
            raise ValueError("write_policy 'strom' needs allowed_pubkeys")
        self.host = host
        self._requested_port = port
        self._write_policy = write_policy
        self._allowed = allowed_pubkeys
        self._trusted = trusted_pubkeys
        self._public_url = public_url
        self._purge_interval = purge_interval
        self.limits = limits or Limits()
        # Behind a reverse proxy the per-address limits count its clients, not the proxy.
        self.proxies = trusted_networks(trusted_proxies)
        self._query_buckets = KeyedBuckets(self.limits.address_reqs_per_second,
                                           self.limits.address_req_burst)
        self.store = EventStore(db_path)
        self.auth_urls: frozenset[str] = frozenset()
        self._info = RelayInfo(name, description, pubkey, contact, write_policy == "strom")
        self._document = information_document(self._info, self.limits)
        self._connections: set[Connection] = set()
        self._server: Server | None = None
        self._port: int | None = None
        self._purger: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._port is None:
            raise RuntimeError("relay not started")
        return self._port

    @property
    def connection_count(self) -> int:
        """Open client connections right now."""
        return len(self._connections)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    async def start(self) -> None:
        """Open the store, bind the port and serve."""
        sock = _bind(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        try:
            await self.store.open()
            self._server = await serve(
                self._serve_connection, sock=sock, process_request=self._process_request,
                max_size=self.limits.max_message_length, server_header=None)
        except BaseException:
            sock.close()
            await self.store.close()
            raise
        urls = {self.url}
        if self.host in ("127.0.0.1", "::1"):
            urls.add(f"ws://localhost:{self.port}")
        if self._public_url:
            urls.add(self._public_url)
        self.auth_urls = frozenset(normalize_url(u) for u in urls)
        self._purger = asyncio.create_task(self._purge_loop(), name="relay-purge")
        log.info("nostr relay listening on %s (write policy %s)", self.url, self._write_policy)

    async def close(self) -> None:
        """Close every connection, commit queued events, close the store."""
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            self._purger = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.store.close()

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def is_trusted(self, pubkey: str) -> bool:
        return self._trusted is not None and pubkey in self._trusted()

    def take_query(self, address: str) -> bool:
        """Whether `address` may make one more REQ or COUNT now (over all its connections)."""
        return self._query_buckets.take(address)

    def charge_query(self, address: str, cost: float) -> None:
        """What a served REQ cost beyond its token, charged to `address`."""
        self._query_buckets.charge(address, cost)

    def write_rejection(self, event: Event) -> str | None:
        """Why the write policy refuses `event`, or None."""
        if self._write_policy == "open" or self._allowed is None:
            return None
        allowed = self._allowed()
        if event.pubkey in allowed or any(p in allowed for p in event.tag_index.get("p", ())):
            return None
        return "restricted: this relay only takes events from or to its charge points"

    def broadcast(self, event: Event) -> None:
        """Hand a newly stored (or ephemeral) event to every live subscription."""
        for connection in list(self._connections):
            connection.offer(event)

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        response = http_response(ws, request, self._document)
        if response is None and len(self._connections) >= self.limits.max_connections:
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections, try again later\n")
        return response

    async def _serve_connection(self, ws: ServerConnection) -> None:
        connection = Connection(ws, self)
        self._connections.add(connection)
        try:
            await connection.serve()
        finally:
            self._connections.discard(connection)

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(self._purge_interval)
            try:
                purged = await self.store.purge_expired()
            except Exception:
                log.exception("relay: purging expired events failed")
                continue
            if purged:
                log.info("relay: purged %d expired events", purged)
