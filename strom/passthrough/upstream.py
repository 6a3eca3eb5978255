"""The socket to a charger's backend: connect, reconnect with backoff, the replay queue.

strom speaks to the backend as the charger would: the charger's calls go out one at a time,
in order, and while the backend is away they wait in a bounded queue (as a charger queues
transaction messages while offline) and are replayed when it is back. A call whose answer
the charger is still waiting for carries a waiter; once strom has answered the charger itself
(the backend away or too slow) the waiter is gone and the backend's answer is dropped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from strom.config import PassthroughSettings
from strom.ocpp.frames import CALL, Frame, FrameError, parse_frame
from strom.outbound import Outbound, OutboundError
from strom.passthrough.config import UpstreamConfig

log = logging.getLogger(__name__)

# Calls worth replaying: what the backend needs for its records. Heartbeats, Authorize and
# DataTransfer answered by strom meanwhile mean nothing later, so they are not queued.
REPLAYED = frozenset({"BootNotification", "StatusNotification", "StartTransaction",
                      "StopTransaction", "MeterValues", "DiagnosticsStatusNotification",
                      "FirmwareStatusNotification"})
# Dropped first when the queue is full: the newest state supersedes them.
SHEDDABLE = frozenset({"MeterValues", "StatusNotification"})
OPEN_TIMEOUT = 10.0
# The websockets library logs the handshake's headers at debug, Authorization among them: the
# backend connections log through a logger that never goes below INFO.
_WS_LOG = logging.getLogger("strom.passthrough.websocket")
_WS_LOG.setLevel(logging.INFO)

# The backend's answer as parsed and as it wrote it (forwarded as written).
Answer = tuple[Frame, str]


@dataclass(eq=False)
class Outgoing:
    """One charger call on its way to the backend. `render` makes the text at send time (a
    transaction id may only be known then); `answered` hears the backend's answer."""

    action: str
    unique_id: str
    render: Callable[[], str]
    size: int
    waiter: asyncio.Future[Answer | None] | None = None
    answered: Callable[[Frame], None] | None = None
    sent: bool = field(default=False)


@dataclass(eq=False)
class Backlog:
    """The calls on their way to one charger's backend. It outlives a connection: a charger
    that reconnects while its backend is away keeps what was queued (`Passthrough` holds it
    per charger)."""

    items: deque[Outgoing] = field(default_factory=deque)
    size: int = 0  # bytes
    dropped: int = 0  # calls lost to a full queue (logged)


class UpstreamLink:
    """One charger's backend connection. `on_call` gets the backend's calls (frame, text)."""

    def __init__(self, cp_id: str, config: UpstreamConfig, settings: PassthroughSettings,
                 on_call: Callable[[Frame, str], Awaitable[None]], *,
                 outbound: Outbound | None, max_message_bytes: int,
                 backlog: Backlog | None = None, replayed: frozenset[str] = REPLAYED,
                 sheddable: frozenset[str] = SHEDDABLE) -> None:
        self.cp_id = cp_id
        self._replayed, self._sheddable = replayed, sheddable
        self._config = config
        self._settings = settings
        self._on_call = on_call
        self._outbound = outbound
        self._max_size = max_message_bytes
        self._backlog = backlog or Backlog()
        self._queue = self._backlog.items
        self._wakeup = asyncio.Event()
        # Set once the first connection attempt ended: the charger's first calls (its boot)
        # wait for it, so a backend that is up gets them live rather than replayed.
        self._first_try = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._inflight: tuple[str, asyncio.Future[Answer]] | None = None
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"upstream:{self.cp_id}")

    async def close(self) -> None:
        """The charger went: so does its backend connection (the backend sees it offline)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for item in list(self._queue):
            if item.action not in self._replayed:
                self._remove(item)
            _resolve(item.waiter, None)
            item.waiter = None

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def dropped(self) -> int:
        """Calls lost to a full queue."""
        return self._backlog.dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- the charger's calls ----------------------------------------------------------------

    async def forward(self, item: Outgoing) -> Answer | None:
        """Send one charger call; the backend's answer, or None when strom must answer the
        charger itself (backend away, or no answer within `answer_timeout`). A call in
        `replayed` stays queued until the backend has it; any other is dropped then."""
        if not self._first_try.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.answer_timeout):
                    await self._first_try.wait()
        if not self.connected and item.action not in self._replayed:
            return None
        if self.connected:
            item.waiter = asyncio.get_running_loop().create_future()
        if not self._enqueue(item) or item.waiter is None:
            return None
        try:
            async with asyncio.timeout(self._settings.answer_timeout):
                return await asyncio.shield(item.waiter)
        except TimeoutError:
            log.warning("%s: the backend did not answer %s within %g s; strom answered",
                        self.cp_id, item.action, self._settings.answer_timeout)
            if item.action not in self._replayed and not item.sent and item in self._queue:
                self._remove(item)
            return None
        finally:
            item.waiter = None  # an answer that comes later is not the charger's any more

    def _enqueue(self, item: Outgoing) -> bool:
        """Queue a call within the bounds: shed old MeterValues and StatusNotifications for
        it if that makes room, else refuse it (the queue stays as it was)."""
        limit_n, limit_bytes = self._settings.queue_max_messages, self._settings.queue_max_bytes
        if len(self._queue) < limit_n and self._backlog.size + item.size <= limit_bytes:
            self._append(item)  # room: no scan of the queue for what to shed
            return True
        sheddable = [q for q in self._queue if q.action in self._sheddable and not q.sent]
        if (len(self._queue) - len(sheddable) >= limit_n or item.size
                + self._backlog.size - sum(q.size for q in sheddable) > limit_bytes):
            self._lost(item)
            return False
        for victim in sheddable:
            if len(self._queue) < limit_n and self._backlog.size + item.size <= limit_bytes:
                break
            self._remove(victim)
            self._lost(victim)
        self._append(item)
        return True

    def _append(self, item: Outgoing) -> None:
        self._queue.append(item)
        self._backlog.size += item.size
        self._wakeup.set()

    def _remove(self, item: Outgoing) -> None:
        self._queue.remove(item)
        self._backlog.size -= item.size
        _resolve(item.waiter, None)

    def _lost(self, item: Outgoing) -> None:
        self._backlog.dropped += 1
        log.warning("%s: backend queue full (%d calls, %d bytes): %s dropped", self.cp_id,
                    len(self._queue), self._backlog.size, item.action)

    async def send(self, text: str) -> bool:
        """Send an answer of the charger's to the backend now; False when it is away."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    # --- the connection ---------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                ws = await self._connect()
            except (OSError, InvalidHandshake, InvalidURI, OutboundError, TimeoutError,
                    ssl.SSLError, ValueError) as exc:
                self._first_try.set()
                failures += 1
                wait = self._backoff(failures)
                log.warning("%s: backend unreachable (%s); next try in %.1f s", self.cp_id,
                            _why(exc), wait)
                await asyncio.sleep(wait)
                continue
            failures = 0
            log.info("%s: connected to its backend (%d queued calls to replay)", self.cp_id,
                     len(self._queue))
            self._ws = ws
            self._first_try.set()
            sender = asyncio.create_task(self._send_queue(ws), name=f"upstream-send:{self.cp_id}")
            try:
                await self._receive(ws)
            finally:
                self._ws = None
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await sender
                self._inflight = None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 2.0)
            # Calls waiting for an answer the backend will not give: strom answers them.
            for item in list(self._queue):
                if item.action not in self._replayed:
                    self._remove(item)
                else:
                    _resolve(item.waiter, None)
            log.warning("%s: backend connection lost; calls queue for replay", self.cp_id)
            failures = 1
            await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        low, high = self._settings.reconnect_min_seconds, self._settings.reconnect_max_seconds
        # Full doubling with jitter: a backend restart must not see every charger at once.
        return min(high, low * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)

    async def _connect(self) -> ClientConnection:
        config = self._config
        kwargs: dict[str, Any] = {}
        if self._outbound is not None:
            # Connect to the address the fence checked, speak to the host by name.
            target = await self._outbound.check(config.url)
            kwargs.update(host=target.ip, port=target.port)
            if target.scheme == "wss":
                kwargs["server_hostname"] = target.host
        headers = {}
        if config.password is not None:
            user_pass = f"{self.cp_id}:{config.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(user_pass).decode()
        ssl_context = None
        if config.url.startswith("wss://"):
            ssl_context = ssl.create_default_context()
            if config.client_cert and config.client_key:
                ssl_context.load_cert_chain(config.client_cert, config.client_key)
            kwargs["ssl"] = ssl_context
        ws = await connect(config.url, subprotocols=[Subprotocol(config.subprotocol)],
                           additional_headers=headers, open_timeout=OPEN_TIMEOUT,
                           max_size=self._max_size, ping_interval=20, ping_timeout=20,
                           close_timeout=2, user_agent_header=None, proxy=None, logger=_WS_LOG,
                           **kwargs)
        if ws.subprotocol != config.subprotocol:
            await ws.close(1002, "subprotocol required")
            raise ValueError(f"the backend did not accept the subprotocol {config.subprotocol}")
        return ws

    async def _send_queue(self, ws: ClientConnection) -> None:
        """The charger's calls, one at a time and in order (OCPP-J allows one in flight)."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            item = self._queue[0]
            answer: asyncio.Future[Answer] = loop.create_future()
            self._inflight = (item.unique_id, answer)
            await ws.send(item.render())
            item.sent = True
            try:
                async with asyncio.timeout(self._settings.answer_timeout):
                    got: Answer | None = await answer
            except TimeoutError:
                # A stalling backend costs each call one timeout, never the charger's loop.
                got = None
            self._inflight = None
            if self._queue and self._queue[0] is item:
                self._queue.popleft()
                self._backlog.size -= item.size
            if got is not None and item.answered is not None:
                item.answered(got[0])
            _resolve(item.waiter, got)

    async def _receive(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                try:
                    frame = parse_frame(raw)
                except FrameError as exc:
                    log.info("%s: backend sent a bad frame: %s", self.cp_id, exc.description)
                    await self.send(exc.to_json())
                    continue
                if frame.message_type == CALL:
                    await self._on_call(frame, raw)
                elif self._inflight is not None and self._inflight[0] == frame.unique_id:
                    _resolve(self._inflight[1], (frame, raw))
                else:
                    log.debug("%s: backend answered no open call (%s)", self.cp_id,
                              frame.unique_id)


def _resolve(waiter: asyncio.Future[Any] | None, value: Any) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(value)


def _why(exc: BaseException) -> str:
    # Exception texts of websockets name the URL at most, never the Authorization header.
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
