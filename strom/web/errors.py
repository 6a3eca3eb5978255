"""Errors as JSON: HTTP errors with their reason, and no bare 500 traceback for any input."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strom.web.responses import JSONResponse

log = logging.getLogger(__name__)


async def http_error(request: Request, exc: Exception) -> Response:
    """`{"error": reason}`, plus `fields` for a 422 from `strom.web.validation`."""
    assert isinstance(exc, HTTPException)
    body: dict[str, object] = {"error": exc.detail}
    fields = getattr(exc, "fields", None)
    if fields is not None:
        body["fields"] = fields
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


class CatchAll:
    """ASGI middleware: an unexpected exception is logged once and answered `500 internal error`.

    Only the endpoint's name is logged, not the path: paths carry session tokens.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            endpoint = getattr(scope.get("endpoint"), "__name__", "unknown endpoint")
            log.exception("internal error in %s %s", scope.get("method"), endpoint)
            if not started:
                await JSONResponse({"error": "internal error"}, status_code=500)(
                    scope, receive, send)
