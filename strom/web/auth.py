"""Admin authentication: a bearer token compared in constant time."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from strom.container import Services
from strom.security import token_matches


def services(request: Request) -> Services:
    return request.app.state.services


def require_admin(request: Request) -> None:
    """Raise 401 unless the request carries `Authorization: Bearer <admin token>`."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token_matches(token.strip(), services(request).admin_token):
        raise HTTPException(401, "missing or wrong admin token (see <data-dir>/admin.token)",
                            headers={"WWW-Authenticate": "Bearer"})


def require_loopback(request: Request) -> None:
    client = request.client.host if request.client else ""
    if client not in ("127.0.0.1", "::1", "localhost"):
        raise HTTPException(403, "this route answers on loopback only")
