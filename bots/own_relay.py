"""Publishing to strom's own relay over a websocket of its own (plain nostr: EVENT, then OK).

The shared nostr-sdk client costs ~0.7 ms of CPU per event published (its binding copies the
event into Rust and polls each send as a future from Python): the embedded relay's lane sends
the event's JSON here instead, and nostr-sdk keeps the subscriptions, lookups and the public
relays. Strom's own relay takes its keys' events without NIP-42, so this connection sends no
AUTH. One connection, opened when the first event goes out and again after it was lost; the
`OK`s are matched to the waiting events by id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import websockets

from bots.relay_lanes import OK_SECONDS
from bots.signed import SignedEvent

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024  # what comes back: OK, NOTICE, AUTH
OPEN_SECONDS = 5.0


class OwnRelay:
    """`await send(event)` -> (accepted, the relay's message or "timeout: …")."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._ws: websockets.ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        self._waiting: dict[str, list[asyncio.Future[tuple[bool, str]]]] = {}

    async def send(self, event: SignedEvent) -> tuple[bool, str]:
        """Send `event` and wait at most `OK_SECONDS` for the relay's `OK`."""
        answer: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(event.id, [])
        waiting.append(answer)
        try:
            async with asyncio.timeout(OK_SECONDS):
                # Open (or wait for the opening) only when there is no connection.
                ws = self._ws or await self._connection()
                await ws.send(f'["EVENT",{event.json}]')
                return await answer
        except TimeoutError:
            return False, "timeout"
        except (OSError, websockets.WebSocketException) as exc:
            return False, f"timeout: no connection ({str(exc) or type(exc).__name__})"
        finally:
            waiting.remove(answer)
            if not waiting:
                self._waiting.pop(event.id, None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        self._ws = self._reader = None

    async def _connection(self) -> websockets.ClientConnection:
        async with self._opening:
            if self._ws is None:
                # No permessage-deflate: on loopback, compressing costs more than it saves.
                ws = await websockets.connect(self.url, proxy=None, max_size=MAX_MESSAGE,
                                              open_timeout=OPEN_SECONDS, compression=None)
                self._ws = ws
                self._reader = asyncio.create_task(self._read(ws), name="nostr:own-relay")
            return self._ws

    async def _read(self, ws: websockets.ClientConnection) -> None:
        try:
            async for text in ws:
                self._answer(json.loads(text))
        except (websockets.WebSocketException, ValueError) as exc:
            log.info("nostr: connection to %s ended (%s)", self.url, exc)
        finally:
            if self._ws is ws:
                self._ws = None
            # Events sent on it get no OK any more: they may go again on the next one.
            for waiting in self._waiting.values():
                for answer in waiting:
                    if not answer.done():
                        answer.set_result((False, "timeout: connection lost"))

    def _answer(self, message: Any) -> None:
        if isinstance(message, list) and len(message) >= 3 and message[0] == "OK":
            for answer in self._waiting.get(message[1], []):
                if not answer.done():
                    said = message[3] if len(message) > 3 and isinstance(message[3], str) else ""
                    answer.set_result((message[2] is True, said))
