"""The OCPP central system: `ws://HOST:PORT/ocpp/{cp_id}`, 1.6J, 2.0.1 and 2.1.

The handshake decides who may connect (known id → else 404; HTTP Basic with the charger's
password when it has one → else 401) and in which OCPP (the highest subprotocol both speak,
within the charger's allow-list, `strom.ocpp.protocols`); after it, each charger is served by
one `ChargePointConnection` (1.6) or `V201Connection` (2.0.1, 2.1). A charger that reconnects replaces its old socket, and pings find
dead peers, so no zombie connection stays behind.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import ssl
import weakref
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from strom.config import OcppSettings
from strom.events import ChargePointConnected, ChargePointDisconnected, EventBus
from strom.forwarded import client_address, trusted_networks
from strom.ocpp.auth_throttle import AuthThrottle
from strom.ocpp.cert_signing import CertificateSigning, load_ca
from strom.ocpp.charge_point import (
    Authorizer,
    ChargePointConnection,
    OcppContext,
    SharedHandlers,
)
from strom.ocpp.client_certs import refusal, require_client_certs
from strom.ocpp.control import Ocpp16Control
from strom.ocpp.protocols import OCPP16, OCPP21, OCPP201, SUPPORTED, choose
from strom.ocpp.rpc import OcppRpc
from strom.ocpp.sampling import SamplingSetup, configure_sampling
from strom.ocpp.v201.connection import V21Connection, V201Connection
from strom.ocpp.v201.control import Ocpp201Control
from strom.ocpp.v201.state import V201Context
from strom.security import verify_password
from strom.store.charge_points import ChargePointRepository, ChargerRecord
from strom.store.event_log import EventLogRepository
from strom.store.transactions import TransactionRepository

log = logging.getLogger(__name__)

PATH_PREFIX = "/ocpp/"
REPLACED = 4000  # close code for a socket superseded by the same charger's new one
RETIRE_SECONDS = 1.0
# scrypt runs in threads; more at once than cores would only slow the event loop down.
CONCURRENT_SCRYPTS = 2

# Passthrough (strom/passthrough/): a connection of its own for a charger that keeps its
# backend, or None for strom's plain one. Arguments: the charger's record (as read for its
# handshake), websocket, context (1.6's OcppContext or 2.0.1's V201Context), call timeout.
ConnectionFactory = Callable[[ChargerRecord, Any, Any, float], Awaitable[OcppRpc | None]]


class CentralSystem:
    """Accepts chargers and routes their messages; `control` makes calls to them."""

    def __init__(self, settings: OcppSettings, charge_points: ChargePointRepository,
                 transactions: TransactionRepository, event_log: EventLogRepository,
                 bus: EventBus, *, tls: ssl.SSLContext | None = None,
                 trusted_proxies: Sequence[str] = (), data_dir: Path | None = None) -> None:
        self._settings = settings
        # Behind a reverse proxy the throttle counts the charger's address, not the proxy's.
        self._proxies = trusted_networks(trusted_proxies)
        # strom's own certificate ([tls]) unless [ocpp] names one of its own
        self._tls = tls
        self._charge_points = charge_points
        self._event_log = event_log
        self._bus = bus
        self.call_timeout = settings.call_timeout
        self.context = OcppContext(
            charge_points=charge_points, transactions=transactions, event_log=event_log,
            bus=bus, heartbeat_interval=settings.heartbeat_interval,
            rate_per_second=settings.rate_limit_per_second, rate_burst=settings.rate_limit_burst)
        self._v201 = V201Context(self.context)
        ca = load_ca(settings.ca_cert, settings.ca_key, data_dir)
        if ca is not None:
            self.context.cert_signing = CertificateSigning(ca, charge_points, event_log)
        self._ca_pem = ca.cert_pem if ca is not None else None
        # The charger's record, read once per connection by the handshake: its allow-list when
        # the subprotocol is chosen, its backend for passthrough. Read again at every handshake,
        # so an operator's change (from any process) holds from the next connection on; with
        # the loop time it was read (the first boot's answer may use it). Weak: a handshake
        # that fails half-way leaves nothing behind.
        self._records: weakref.WeakKeyDictionary[ServerConnection,
                                                 tuple[ChargerRecord, float]] = \
            weakref.WeakKeyDictionary()
        self._connections: dict[str, OcppRpc] = {}
        # One charger-control adapter per protocol; each knows only its own chargers.
        self.control = Ocpp16Control(self._speaking(ChargePointConnection), settings.call_timeout)
        self.control201 = Ocpp201Control(self._speaking(V201Connection, V21Connection),
                                         settings.call_timeout, self._v201, transactions)
        self.control21 = Ocpp201Control(self._speaking(V21Connection), settings.call_timeout,
                                        self._v201, transactions, protocol=OCPP21)
        # sha256 of passwords already checked with scrypt, so reconnect storms stay cheap.
        self._verified: dict[str, bytes] = {}
        self._throttle = AuthThrottle(budget=settings.auth_failure_budget,
                                      max_backoff=settings.auth_backoff_max_seconds)
        self._scrypts = asyncio.Semaphore(CONCURRENT_SCRYPTS)
        self._server: Server | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.context.on_booted = self._booted
        self._configuring: dict[str, asyncio.Task[None]] = {}
        self._sampling: dict[str, SamplingSetup] = {}
        self.connection_factory: ConnectionFactory | None = None  # passthrough

    @property
    def authorizer(self) -> Authorizer | None:
        return self.context.authorizer

    @authorizer.setter
    def authorizer(self, value: Authorizer | None) -> None:
        self.context.authorizer = value

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        for connection in (ChargePointConnection, V201Connection, V21Connection):
            connection.prepare()
        self._server = await serve(
            self._serve, self._settings.host, self._settings.port,
            subprotocols=[Subprotocol(p) for p in SUPPORTED],
            select_subprotocol=self._select_subprotocol,
            process_request=self._check_request,
            ping_interval=self._settings.ping_interval, ping_timeout=self._settings.ping_timeout,
            # A peer that missed its pongs will not answer a close either.
            close_timeout=min(10.0, self._settings.ping_timeout),
            max_size=self._settings.max_message_bytes, ssl=self._ssl_context(),
            # OCPP frames are a few hundred bytes: permessage-deflate saves little and its
            # zlib state cost ~9 KiB per charger that offers it (docs/performance.md).
            compression=None, server_header="strom")
        log.info("OCPP central system on %s", self.url)

    async def close(self) -> None:
        for task in list(self._configuring.values()):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not (self._settings.tls_cert and self._settings.tls_key):
            return self._tls
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._settings.tls_cert, self._settings.tls_key)
        if self._client_ca:
            require_client_certs(context, self._settings.tls_client_ca, self._ca_pem,
                                 self._settings.tls_client_required)
        return context

    @property
    def _client_ca(self) -> bool:
        """Whether chargers may log in with client certificates (security profile 3)."""
        return bool((self._settings.tls_client_ca or self._ca_pem) and self._settings.tls_cert
                    and self._settings.tls_key)

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        secure = self._tls is not None or self._settings.tls_cert and self._settings.tls_key
        scheme = "wss" if secure else "ws"
        return f"{scheme}://{self._settings.host}:{self.port}{PATH_PREFIX}"

    # --- who is connected -------------------------------------------------------------------

    def connection(self, cp_id: str) -> OcppRpc | None:
        return self._connections.get(cp_id)

    @property
    def adapters(self) -> tuple[Ocpp16Control, Ocpp201Control, Ocpp201Control]:
        """The charger-control adapters, one per protocol (for a `ControlDispatcher`)."""
        return self.control, self.control21, self.control201

    def _adapter(self, cp_id: str) -> Ocpp16Control | Ocpp201Control:
        """The adapter of the protocol `cp_id` is connected with (1.6 when it is not)."""
        return next((a for a in self.adapters if a.is_connected(cp_id)), self.control)

    def _speaking(self, kind: type[OcppRpc], *but: type[OcppRpc]
                  ) -> Callable[[str], Any]:
        """The lookup of chargers connected through `kind` (not its subclasses in `but`);
        a charger whose boot was rejected is asked nothing (OCPP 2.0.1 B03)."""
        def lookup(cp_id: str) -> Any:
            conn = self._connections.get(cp_id)
            if not isinstance(conn, kind) or isinstance(conn, but):
                return None
            return conn if conn.registration != "Rejected" else None
        return lookup

    def is_connected(self, cp_id: str) -> bool:
        return cp_id in self._connections

    def connected_count(self) -> int:
        return len(self._connections)

    def connected_ids(self) -> list[str]:
        return sorted(self._connections)

    async def disconnect(self, cp_id: str, reason: str = "closed by operator") -> bool:
        conn = self._connections.get(cp_id)
        if conn is None:
            return False
        await conn.websocket.close(1000, reason)
        return True

    # --- configuring a booted charger -------------------------------------------------------

    def sampling(self, cp_id: str) -> dict[str, dict[str, str]] | None:
        """How the charger's metering was configured at its last boot (None: not yet)."""
        setup = self._sampling.get(cp_id)
        return setup.to_json() if setup else None

    def _booted(self, cp_id: str) -> None:
        # Called after the BootNotification was answered; calls go out from a task of their own
        # (a call awaited in a handler would wait for an answer the receive loop cannot read).
        if self._settings.meter_sample_interval == 0:
            return
        earlier = self._configuring.pop(cp_id, None)
        if earlier is not None:
            earlier.cancel()
        task = asyncio.create_task(self._configure(cp_id), name=f"configure:{cp_id}")
        self._configuring[cp_id] = task
        task.add_done_callback(lambda t: self._configuring.pop(cp_id, None)
                               if self._configuring.get(cp_id) is t else None)

    async def _configure(self, cp_id: str) -> None:
        try:
            setup = await configure_sampling(self._adapter(cp_id), cp_id,
                                             self._settings.meter_sample_interval)
        except Exception:
            log.exception("%s: configuring its metering failed", cp_id)
            return
        self._sampling[cp_id] = setup
        if setup.failed:
            log.warning("%s: metering not configured as wanted: %s", cp_id, "; ".join(
                f"{key}: {why}" for key, why in setup.failed.items()))
        self._event_log.append_soon("metering_config", setup.to_json(), cp_id)

    # --- handshake --------------------------------------------------------------------------

    async def _check_request(self, connection: ServerConnection,
                             request: Request) -> Response | None:
        cp_id = _cp_id(request.path)
        if cp_id is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "use /ocpp/{charge point id}\n")
        cp = await self._charge_points.get(cp_id)
        if cp is None:
            log.warning("OCPP connection for unknown charge point %r refused", cp_id)
            return connection.respond(HTTPStatus.NOT_FOUND, f"unknown charge point {cp_id}\n")
        self._records[connection] = (cp, asyncio.get_running_loop().time())
        if (why := refusal(cp, connection.transport, self._client_ca)) is not None:
            log.warning("OCPP connection for %s refused: %s", cp_id, why)
            return connection.respond(HTTPStatus.FORBIDDEN, why + "\n")
        if not cp.password_hash:
            return None
        address = client_address(
            connection.remote_address[0] if connection.remote_address else "?",
            request.headers.get("X-Forwarded-For"), self._proxies)
        keys = (f"cp:{cp_id}", f"address:{address}")
        header = request.headers.get("Authorization")
        verdict = await self._password_ok(cp_id, cp.password_hash, header, keys)
        if verdict is None:
            # Refused before any hashing: guessing costs the guesser time, strom nothing.
            wait = self._throttle.retry_after(keys)
            response = connection.respond(HTTPStatus.TOO_MANY_REQUESTS,
                                          "too many wrong passwords; try again later\n")
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        if verdict:
            self._throttle.succeeded(keys[:1])
            return None
        if header:  # no header is no guess: the challenge below asks for credentials
            self._throttle.failed(keys)
        log.warning("OCPP connection for %s from %s refused: wrong or missing password",
                    cp_id, address)
        if (wait := self._throttle.retry_after(keys)) > 0:
            log.warning("OCPP: too many wrong passwords for %s or from %s; their next %.0f s "
                        "are refused without checking", cp_id, address, wait)
        response = connection.respond(HTTPStatus.UNAUTHORIZED, "wrong or missing password\n")
        response.headers["WWW-Authenticate"] = f'Basic realm="strom OCPP {cp_id}"'
        return response

    async def _password_ok(self, cp_id: str, stored: str, header: str | None,
                           keys: tuple[str, str]) -> bool | None:
        """Whether the Basic credentials match; None while throttled (nothing hashed)."""
        charger, address = keys
        if self._throttle.retry_after([charger]) > 0:
            return None
        user, password = _basic_credentials(header)
        if user != cp_id or password is None:
            return None if self._throttle.retry_after([address]) > 0 else False
        digest = hashlib.sha256(stored.encode() + b"\0" + password.encode()).digest()
        known = self._verified.get(cp_id)
        if known is not None and hmac.compare_digest(known, digest):
            return True
        if self._throttle.retry_after([address]) > 0:
            # A throttled address may be a NAT or proxy in front of many chargers: those whose
            # password is known still get in (above); a miss counts against the charger id, so
            # guessing through the cheap check above stays bounded too.
            self._throttle.failed([charger])
            return None
        # scrypt takes tens of milliseconds: keep it off the event loop, a few at a time.
        async with self._scrypts:
            # Asked again: the guesses that queued up here may have used the budget meanwhile.
            if self._throttle.retry_after(keys) > 0:
                return None
            if not await asyncio.to_thread(verify_password, password, stored):
                return False
        self._verified[cp_id] = digest
        return True

    # --- one connection ---------------------------------------------------------------------

    async def _serve(self, websocket: ServerConnection) -> None:
        cp, read_at = self._records.pop(websocket)  # _check_request let it through
        cp_id = cp.id
        offered = websocket.request.headers.get("Sec-WebSocket-Protocol") if websocket.request \
            else None
        allowed = cp.ocpp_protocols or SUPPORTED
        _forget_handshake(websocket)
        # A charger that offers no subprotocol is taken as 1.6 (many 1.6 chargers send none).
        protocol = websocket.subprotocol or (None if offered else OCPP16)
        if protocol not in allowed:
            await websocket.close(1002, f"{cp_id} may use {', '.join(allowed)}")
            return
        conn = (await self._passthrough(protocol, cp, websocket)
                or self._connection_for(protocol, cp_id, websocket))
        if isinstance(conn, SharedHandlers):
            conn.handshake_boot = (read_at, cp.boot_status == "Rejected")
        await self._charge_points.set_connected(cp_id, True, protocol)
        old = self._connections.get(cp_id)
        self._connections[cp_id] = conn
        if old is not None:
            log.info("%s reconnected; closing its old connection", cp_id)
            # In the background: a dead peer takes the whole close timeout to let go, and the
            # charger must not wait that long for its BootNotification to be answered.
            closing = asyncio.create_task(_retire(old.websocket))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        else:
            self._bus.publish(ChargePointConnected(cp_id))
        log.info("%s connected from %s with %s", cp_id, websocket.remote_address[0]
                 if websocket.remote_address else "?", protocol)
        try:
            await conn.start()
        except ConnectionClosed:
            pass
        finally:
            if self._connections.get(cp_id) is conn:
                del self._connections[cp_id]
                await self._charge_points.set_connected(cp_id, False)
                self._bus.publish(ChargePointDisconnected(cp_id))
                log.info("%s disconnected", cp_id)

    async def _passthrough(self, protocol: str, cp: ChargerRecord,
                           websocket: ServerConnection) -> OcppRpc | None:
        """Passthrough (OCPP 1.6J and 2.0.1): the connection of a charger that keeps its
        backend; None for any other."""
        if self.connection_factory is None or not cp.upstream:
            return None
        if protocol not in (OCPP16, OCPP201):
            log.warning("%s connected with %s: passthrough is OCPP 1.6J and 2.0.1 only; "
                        "strom serves it without its backend", cp.id, protocol)
            return None
        context = self._v201 if protocol == OCPP201 else self.context
        return await self.connection_factory(cp, websocket, context, self.call_timeout)


    def _connection_for(self, protocol: str, cp_id: str,
                        websocket: ServerConnection) -> OcppRpc:
        if protocol == OCPP201:
            return V201Connection(cp_id, websocket, self._v201, self.call_timeout)
        if protocol == OCPP21:
            return V21Connection(cp_id, websocket, self._v201, self.call_timeout)
        return ChargePointConnection(cp_id, websocket, self.context, self.call_timeout)

    def _select_subprotocol(self, connection: ServerConnection,
                            subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
        """The highest protocol the charger offers and may use; None when it offers none."""
        record = self._records.get(connection)
        allowed = record[0].ocpp_protocols if record else None
        chosen = choose(subprotocols, allowed)
        return Subprotocol(chosen) if chosen else None


async def _retire(websocket: ServerConnection) -> None:
    """Close a replaced socket: politely if its peer still answers, else cut it within 1 s."""
    try:
        async with asyncio.timeout(RETIRE_SECONDS):
            await websocket.close(REPLACED, "replaced by a new connection")
    except TimeoutError:
        websocket.transport.abort()


def _forget_handshake(websocket: ServerConnection) -> None:
    """Drop the handshake's headers once read: kept for the connection's life they were
    ~4.5 KiB per charger, a fifth of its memory (docs/performance.md)."""
    if websocket.request is not None:
        websocket.request.headers.clear()
    websocket.response = None


def _cp_id(path: str) -> str | None:
    path = path.split("?", 1)[0]
    if not path.startswith(PATH_PREFIX):
        return None
    cp_id = unquote(path[len(PATH_PREFIX):]).strip("/")
    return cp_id if cp_id and "/" not in cp_id else None


def _basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    if not header:
        return None, None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return (user, password) if sep else (None, None)

