"""Admin REST: `/api/v1/sessions`, `/api/v1/sessions/{id}`, `/api/v1/sessions/{id}/stop`,
and `/api/v1/ledger/check`."""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from strom.sessions.audit import check_ledger
from strom.sessions.model import ACTIVE_STATES, State
from strom.web.auth import require_admin, services
from strom.web.session_page import session_json


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(422, f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise HTTPException(422, f"{name} must be between {lo} and {hi}")
    return value


async def list_sessions(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    assert svc.sessions is not None
    state_raw = request.query_params.get("state")
    try:
        state = State(state_raw) if state_raw else None
    except ValueError:
        raise HTTPException(422, f"state must be one of {[s.value for s in State]}") from None
    limit = _int_param(request, "limit", 50, 1, 500)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    items = await svc.sessions.repo.list(cp_id=request.query_params.get("cp_id"), state=state,
                                         limit=limit, offset=offset)
    return JSONResponse({"items": [session_json(svc, s) for s in items], "limit": limit,
                         "offset": offset})


async def get_session(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    assert svc.sessions is not None
    session = await svc.sessions.repo.get(request.path_params["session_id"])
    if session is None:
        raise HTTPException(404, "no such session")
    return JSONResponse(session_json(svc, session))


async def stop_session(request: Request) -> JSONResponse:
    """Stop charging; the refund stays for the payer to claim."""
    require_admin(request)
    svc = services(request)
    assert svc.sessions is not None
    session = await svc.sessions.repo.get(request.path_params["session_id"])
    if session is None:
        raise HTTPException(404, "no such session")
    if session.state not in (State.PAID, *ACTIVE_STATES):
        raise HTTPException(409, f"session is {session.state.value}, nothing to stop")
    session = await asyncio.shield(svc.sessions.stop_and_wait(session.id, "stopped by the operator"))
    return JSONResponse(session_json(svc, session))


async def ledger_check(request: Request) -> JSONResponse:
    require_admin(request)
    report = await check_ledger(services(request).db)
    return JSONResponse(report.to_json(), status_code=200 if report.ok else 409)


routes = [
    Route("/api/v1/sessions", list_sessions),
    Route("/api/v1/sessions/{session_id}", get_session),
    Route("/api/v1/sessions/{session_id}/stop", stop_session, methods=["POST"]),
    Route("/api/v1/ledger/check", ledger_check),
]
