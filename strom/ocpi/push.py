"""Pushes to eMSPs (the CPO is the Sender of Locations, Sessions and CDRs): one bounded queue
and one worker per party, each push retried with exponential backoff, every request through
the outbound fence with the party's token B.

A slow or dead eMSP delays only its own queue; past `[ocpi] push_queue` waiting pushes the
oldest is dropped (an EVSE status push is superseded by the next one anyway; an eMSP that
misses pushes can pull, which is what OCPI expects of it).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from strom.config import OcpiSettings
from strom.ocpi.tokens import header_value
from strom.outbound import Outbound, OutboundError
from strom.store.ocpi import PartyRecord
from strom.tasks import Tasks

log = logging.getLogger(__name__)

MAX_ANSWER = 64 * 1024


@dataclass(frozen=True, slots=True)
class Push:
    method: str  # PUT, PATCH or POST
    url: str
    body: dict[str, Any]


@dataclass
class _Lane:
    token_b: str
    queue: deque[Push]
    routing: dict[str, str]  # 2.2.1 OCPI-from/to-* headers (hubs route by them)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    dropped: int = 0
    failed: int = 0


class Pushes:
    """`send(party, push)` queues it; a worker per party delivers in order."""

    def __init__(self, outbound: Outbound, settings: OcpiSettings, *,
                 backoff_seconds: float = 1.0) -> None:
        self._outbound = outbound
        self._settings = settings
        self._backoff = backoff_seconds
        self._lanes: dict[int, _Lane] = {}
        self._tasks = Tasks()
        self._closed = False

    def send(self, party: PartyRecord, push: Push) -> None:
        if self._closed or party.token_b is None:
            return
        lane = self._lanes.get(party.id)
        if lane is None:
            lane = self._lanes[party.id] = _Lane(
                party.token_b, deque(maxlen=self._settings.push_queue), {
                    "OCPI-from-country-code": self._settings.country_code,
                    "OCPI-from-party-id": self._settings.party_id,
                    "OCPI-to-country-code": party.country_code or "",
                    "OCPI-to-party-id": party.party_id or ""})
            lane.task = self._tasks.spawn(self._work(party.id, lane), f"ocpi-push-{party.id}")
        lane.token_b = party.token_b  # a PUT of credentials may have changed it
        if len(lane.queue) == lane.queue.maxlen:
            lane.dropped += 1
        lane.queue.append(push)
        lane.ready.set()

    def forget(self, party_id: int) -> None:
        """An unregistered party gets nothing more."""
        lane = self._lanes.pop(party_id, None)
        if lane is not None and lane.task is not None:
            lane.task.cancel()

    def stats(self) -> dict[int, dict[str, int]]:
        return {pid: {"waiting": len(lane.queue), "delivered": lane.delivered,
                      "dropped": lane.dropped, "failed": lane.failed}
                for pid, lane in self._lanes.items()}

    async def _work(self, party_id: int, lane: _Lane) -> None:
        while True:
            await lane.ready.wait()
            while lane.queue:
                push = lane.queue.popleft()
                if await self._deliver(lane, push):
                    lane.delivered += 1
                else:
                    lane.failed += 1
            lane.ready.clear()

    async def _deliver(self, lane: _Lane, push: Push) -> bool:
        for attempt in range(self._settings.push_attempts):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            request_id = str(uuid.uuid4())
            headers = {"Authorization": header_value(lane.token_b), "X-Request-ID": request_id,
                       "X-Correlation-ID": request_id, **lane.routing}
            try:
                answer = await self._outbound.send(push.method, push.url, json=push.body,
                                                   headers=headers, max_bytes=MAX_ANSWER)
            except OutboundError as exc:
                log.info("OCPI push %s %s: %s (try %d)", push.method, push.url, exc, attempt + 1)
                continue
            if 200 <= answer.status < 300:
                return True
            log.info("OCPI push %s %s: HTTP %d (try %d)", push.method, push.url, answer.status,
                     attempt + 1)
            if 400 <= answer.status < 500 and answer.status not in (408, 429):
                return False  # the eMSP refuses it: sending it again changes nothing
        log.warning("OCPI push %s %s given up after %d tries", push.method, push.url,
                    self._settings.push_attempts)
        return False

    async def close(self) -> None:
        self._closed = True
        await self._tasks.close()
        self._lanes.clear()
