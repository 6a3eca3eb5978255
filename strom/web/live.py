"""Server-sent events for the pages: `/cp/{id}/events` and `/s/{token}/events`.

Each stream sends the current state first, then a fresh state whenever the bus says that
something about it changed, and a comment every 15 s so proxies keep it open. Besides the
contract's JSON, a frame carries what the page shows (`view`, `availability`), worded on the
server (`strom.web.page_views`) so the page script only copies text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from strom.container import Services
from strom.events import (
    BusEvent,
    ChargePointConnected,
    ChargePointDisconnected,
    ConnectorStatusChanged,
    SessionChanged,
)
from strom.views import charge_point_json, session_json
from strom.web.auth import services
from strom.web.page_views import availability, session_view
from strom.web.responses import json_text
from strom.web.session_page import viewed_session

KEEPALIVE = 15.0
CHARGER_EVENTS = (ConnectorStatusChanged, ChargePointConnected, ChargePointDisconnected)


def _frame(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json_text(data)}\n\n"


async def _stream(request: Request, name: str, types: tuple[type[BusEvent], ...],
                  concerns: Callable[[Any], bool],
                  snapshot: Callable[[Any], Awaitable[dict[str, Any] | None]]
                  ) -> AsyncIterator[str]:
    """`snapshot(event)` is the state to send after `event` (None: the state on connecting)."""
    async with services(request).bus.listen(*types) as queue:
        first = await snapshot(None)
        if first is not None:
            yield _frame(name, first)
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if concerns(event) and (data := await snapshot(event)) is not None:
                yield _frame(name, data)


def _sse(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def charge_point_events(request: Request) -> StreamingResponse:
    """The charge point JSON (contract §6) on every status change, for its page."""
    svc = services(request)
    cp_id = request.path_params["cp_id"]
    if not await svc.charge_points.exists(cp_id):
        raise HTTPException(404, "unknown charge point")
    return _sse(_stream(request, "charge_point", CHARGER_EVENTS, lambda e: e.cp_id == cp_id,
                        lambda event: _charger_view(svc, cp_id)))


async def all_charge_point_events(request: Request) -> StreamingResponse:
    """Every charger's JSON whenever its status changes, for the list on `/`."""
    svc = services(request)

    async def snapshot(event: Any) -> dict[str, Any] | None:
        return await _charger_view(svc, event.cp_id) if event is not None else None

    return _sse(_stream(request, "charge_point", CHARGER_EVENTS, lambda e: True, snapshot))


async def _charger_view(svc: Services, cp_id: str) -> dict[str, Any] | None:
    cp = await svc.charge_points.get(cp_id)
    if cp is None:
        return None
    data = charge_point_json(svc, cp)
    return {**data, "availability": availability(data)}


async def session_events(request: Request) -> StreamingResponse:
    """The session JSON (contract §6) and its page wording on every change of the session."""
    svc = services(request)
    # The payer's token streams the payer's JSON (with the stop & refund link); the view
    # token the read-only one.
    found = await viewed_session(svc, request.path_params["token"])
    if found is None:
        raise HTTPException(404, "no such session")
    (session, payer), sessions = found, svc.sessions
    session_id = session.id

    async def snapshot(event: Any) -> dict[str, Any] | None:
        current = await sessions.get(session_id)
        if current is None:
            return None
        data = session_json(svc, current, payer=payer)
        return {**data, "view": session_view(data).to_json()}

    return _sse(_stream(request, "session", (SessionChanged,),
                        lambda e: e.session_id == session_id, snapshot))


routes = [
    Route("/events", all_charge_point_events),
    Route("/cp/{cp_id}/events", charge_point_events),
    Route("/s/{token}/events", session_events),
]
