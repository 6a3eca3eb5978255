"""The ASGI application: every route module contributes its `routes`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strom.services import Services
from strom.web import (
    api_sessions,
    dev_pay,
    health,
    live,
    lnurl_pay,
    lnurl_withdraw,
    pages,
    public_api,
    session_page,
)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_web_app(services: Services) -> Starlette:
    routes = [*health.routes, *lnurl_pay.routes, *lnurl_withdraw.routes, *session_page.routes,
              *api_sessions.routes, *public_api.routes, *dev_pay.routes, *live.routes,
              *pages.routes]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.services = services
    return app
