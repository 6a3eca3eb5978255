"""`GET /.well-known/acme-challenge/{token}`: HTTP-01 answers while strom orders a certificate."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from strom.web.auth import services


async def challenge(request: Request) -> PlainTextResponse:
    tls = services(request).tls
    answer = tls.answers.get(request.path_params["token"]) if tls is not None else None
    if answer is None:
        return PlainTextResponse("no such challenge\n", status_code=404)
    return PlainTextResponse(answer)


routes = [Route("/.well-known/acme-challenge/{token}", challenge)]
