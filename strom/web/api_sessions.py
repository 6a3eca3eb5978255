"""Admin REST: `/api/v1/sessions`, `/api/v1/sessions/{id}`, `/api/v1/sessions/{id}/stop`,
and `/api/v1/ledger/check`."""

from __future__ import annotations

import asyncio

from pydantic import Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from strom.sessions.model import ACTIVE_STATES, State
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse
from strom.web.session_page import session_json
from strom.web.validation import PageQuery, page, read_query


class SessionsQuery(PageQuery):
    cp_id: str | None = Field(None, min_length=1, max_length=100,
                              description="Only this charge point's.")
    state: State | None = Field(None, description="Only sessions in this state.")


async def list_sessions(request: Request) -> JSONResponse:
    """Newest first, filtered by `cp_id` and `state`, `{"items","total","limit","offset"}`."""
    require_admin(request)
    svc = services(request)
    query = read_query(request, SessionsQuery)
    items = await svc.sessions.list(cp_id=query.cp_id, state=query.state,
                                    limit=query.limit, offset=query.offset)
    return JSONResponse(page([session_json(svc, s, payer=False) for s in items], await svc.sessions.count(cp_id=query.cp_id, state=query.state),
                             query))


async def get_session(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    session = await svc.sessions.get(request.path_params["session_id"])
    if session is None:
        raise HTTPException(404, "no such session")
    return JSONResponse(session_json(svc, session, payer=False))


async def stop_session(request: Request) -> JSONResponse:
    """Stop charging; the refund stays for the payer to claim (the operator never gets the
    payer's stop & refund link: admin JSON carries the read-only view link only)."""
    require_admin(request)
    svc = services(request)
    session = await svc.sessions.get(request.path_params["session_id"])
    if session is None:
        raise HTTPException(404, "no such session")
    if session.state not in (State.PAID, *ACTIVE_STATES):
        raise HTTPException(409, f"session is {session.state.value}, nothing to stop")
    session = await asyncio.shield(svc.sessions.stop_and_wait(session.id, "stopped by the operator"))
    return JSONResponse(session_json(svc, session, payer=False))


async def ledger_check(request: Request) -> JSONResponse:
    require_admin(request)
    report = await services(request).sessions.check_ledger()
    return JSONResponse(report.to_json(), status_code=200 if report.ok else 409)


routes = [
    Route("/api/v1/sessions", list_sessions),
    Route("/api/v1/sessions/{session_id}", get_session),
    Route("/api/v1/sessions/{session_id}/stop", stop_session, methods=["POST"]),
    Route("/api/v1/ledger/check", ledger_check),
]
