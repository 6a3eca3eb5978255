"""Admin REST: `GET /api/v1/stream` — server-sent events for the operator console.

Events: `ready` once the stream listens; `charge_point` (the admin view) when a charger
connects, disconnects, boots, changes a connector's status or one of its sessions changes;
`session` (the session JSON) on every session change; `log` (`{"level","logger","message"}`)
for each log line. `?topics=charge_points,sessions,log` picks some (default: all).
A comment every 15 s keeps proxies from closing the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from strom.container import Services
from strom.events import (
    BusEvent,
    ChargePointBooted,
    ChargePointConnected,
    ChargePointDisconnected,
    ConnectorStatusChanged,
    LogLine,
    SessionChanged,
)
from strom.views import session_json
from strom.web.admin_views import admin_views
from strom.web.auth import require_admin, services
from strom.web.responses import json_text
from strom.web.validation import InvalidInput, read_query

KEEPALIVE = 15.0
TOPICS = {
    "charge_points": (ChargePointConnected, ChargePointDisconnected, ChargePointBooted,
                      ConnectorStatusChanged, SessionChanged),
    "sessions": (SessionChanged,),
    "log": (LogLine,),
}


class StreamQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    topics: str = Field(",".join(TOPICS), pattern=r"^[a-z_,]{1,100}$",
                        description="Comma-separated: charge_points, sessions, log.")

    def chosen(self) -> set[str]:
        chosen = {t for t in self.topics.split(",") if t}
        unknown = chosen - set(TOPICS)
        if unknown or not chosen:
            raise InvalidInput([{"loc": ["query", "topics"],
                                 "msg": f"topics are some of {', '.join(TOPICS)}"}])
        return chosen


def frame(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json_text(data)}\n\n"


async def _frames(svc: Services, topics: set[str], event: BusEvent) -> list[str]:
    frames: list[str] = []
    if isinstance(event, LogLine):
        return [frame("log", {"level": event.level, "logger": event.logger,
                              "message": event.message})]
    if isinstance(event, SessionChanged) and "sessions" in topics:
        session = await svc.sessions.get(event.session_id)
        if session is not None:
            frames.append(frame("session", session_json(svc, session)))
    cp_id = getattr(event, "cp_id", None)
    if "charge_points" in topics and cp_id is not None:
        cp = await svc.charge_points.get(cp_id)
        if cp is not None:
            frames.append(frame("charge_point", (await admin_views(svc, [cp]))[0]))
    return frames


async def _events(svc: Services, topics: set[str]) -> AsyncIterator[str]:
    types = tuple({t for topic in topics for t in TOPICS[topic]})
    async with svc.bus.listen(*types) as queue:
        yield frame("ready", {"topics": sorted(topics)})
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            for text in await _frames(svc, topics, event):
                yield text


async def stream(request: Request) -> StreamingResponse:
    require_admin(request)
    topics = read_query(request, StreamQuery).chosen()
    return StreamingResponse(_events(services(request), topics), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


routes = [Route("/api/v1/stream", stream)]
