"""An eMSP written from the OCPI 2.2.1 spec, not from strom's code: a Starlette app on
loopback receiving pushes and command results (as the Receiver of Locations, Sessions and
CDRs), and an httpx client for pulling and for commands (the Sender of Commands)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from strom.http_server import HttpServer


def ok(data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z"}
    if data is not None:
        body["data"] = data
    return body


def token_header(token: str) -> dict[str, str]:
    """2.2.1: `Authorization: Token <base64(token)>`."""
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


class Emsp:
    """`async with Emsp().running() as emsp:` — `emsp.register(strom_versions_url, token_a)`."""

    def __init__(self, country_code: str = "NL", party_id: str = "EMS") -> None:
        self.country_code, self.party_id = country_code, party_id
        self.token_b = secrets.token_urlsafe(24)  # what strom must present to us
        self.token_c: str | None = None  # what we present to strom
        self.received: list[tuple[str, str, Any]] = []  # (method, path, body) of pushes
        self.refused: list[str] = []  # requests without our token B
        self.routing: list[str] = []  # OCPI-to-party-id of each push (2.2.1 routing headers)
        self.server: HttpServer | None = None
        self.strom_endpoints: dict[str, str] = {}
        self.failing = 0  # answer this many more pushes with HTTP 503 (a flaky eMSP)
        self.realtime: dict[str, str] = {}  # uid → AuthorizationInfo.allowed (default NOT_ALLOWED)

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/ocpi/emsp"

    def _refusal(self, request: Request) -> JSONResponse | None:
        """None for a request with our token B; else the 401 strom gets (its path noted)."""
        if request.headers.get("authorization") == token_header(self.token_b)["Authorization"]:
            return None
        self.refused.append(request.url.path)
        return JSONResponse({"status_code": 2000, "timestamp": "x"}, status_code=401)

    async def _versions(self, request: Request) -> JSONResponse:
        if (refused := self._refusal(request)) is not None:
            return refused
        return JSONResponse(ok([{"version": "2.2.1", "url": f"{self.base}/2.2.1"}]))

    async def _details(self, request: Request) -> JSONResponse:
        if (refused := self._refusal(request)) is not None:
            return refused
        modules = [("credentials", "SENDER"), ("locations", "RECEIVER"),
                   ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"), ("commands", "SENDER"),
                   ("tokens", "SENDER")]
        return JSONResponse(ok({"version": "2.2.1", "endpoints": [
            {"identifier": name, "role": role, "url": f"{self.base}/2.2.1/{name}"}
            for name, role in modules]}))

    async def _receive(self, request: Request) -> JSONResponse:
        if (refused := self._refusal(request)) is not None:
            return refused
        if self.failing > 0:
            self.failing -= 1
            return JSONResponse({"status_code": 3000, "timestamp": "x"}, status_code=503)
        body = await request.json() if await request.body() else None
        if request.path_params["module"] == "commands" and not _command_result(body):
            return JSONResponse({"status_code": 2001, "timestamp": "x"}, status_code=400)
        self.routing.append(request.headers.get("ocpi-to-party-id", ""))
        self.received.append((request.method, request.url.path, body))
        return JSONResponse(ok())

    async def _authorize(self, request: Request) -> JSONResponse:
        """Real-time authorization (2.2.1 part 12.2.2.1): our answer for a token uid."""
        if (refused := self._refusal(request)) is not None:
            return refused
        uid = request.path_params["uid"]
        self.received.append(("POST", request.url.path, await request.json()))
        return JSONResponse(ok({"allowed": self.realtime.get(uid, "NOT_ALLOWED"),
                                "authorization_reference": f"rt-{uid}",
                                "token": self.token(uid, "NEVER")}))

    def token(self, uid: str, whitelist: str = "ALLOWED", valid: bool = True) -> dict[str, Any]:
        """A Token object of ours (2.2.1 part 12.3.2)."""
        return {"country_code": self.country_code, "party_id": self.party_id, "uid": uid,
                "type": "RFID", "contract_id": f"{self.country_code}-{self.party_id}-{uid}",
                "issuer": "Test eMSP", "valid": valid, "whitelist": whitelist,
                "last_updated": "2026-01-01T00:00:00Z"}

    def pushes(self, module: str, method: str | None = None) -> list[tuple[str, str, Any]]:
        """Pushes under a module's URL (`…/{module}/…`)."""
        return [r for r in self.received if f"/2.2.1/{module}/" in r[1]
                and (method is None or r[0] == method)]

    def pushes_to(self, module: str, method: str) -> list[tuple[str, str, Any]]:
        """Pushes to the module's URL itself (a CDR is POSTed there)."""
        return [r for r in self.received if r[1].endswith(f"/2.2.1/{module}") and r[0] == method]

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Emsp]:
        app = Starlette(routes=[
            Route("/ocpi/emsp/versions", self._versions),
            Route("/ocpi/emsp/2.2.1", self._details),
            Route("/ocpi/emsp/2.2.1/tokens/{uid}/authorize", self._authorize, methods=["POST"]),
            Route("/ocpi/emsp/2.2.1/{module}/{rest:path}", self._receive,
                  methods=["GET", "PUT", "PATCH", "POST"]),
            Route("/ocpi/emsp/2.2.1/{module}", self._receive, methods=["POST"]),
        ])
        self.server = HttpServer(app, "127.0.0.1", 0)
        await self.server.start()
        try:
            yield self
        finally:
            await self.server.close()

    def credentials(self) -> dict[str, Any]:
        return {"token": self.token_b, "url": f"{self.base}/versions", "roles": [{
            "role": "EMSP", "party_id": self.party_id, "country_code": self.country_code,
            "business_details": {"name": "Test eMSP"}}]}

    async def register(self, http: httpx.AsyncClient, versions_url: str,
                       token_a: str) -> dict[str, Any]:
        """The 2.2.1 handshake: versions, details, POST credentials; keeps token C."""
        versions = (await http.get(versions_url, headers=token_header(token_a))).json()
        url = next(v["url"] for v in versions["data"] if v["version"] == "2.2.1")
        details = (await http.get(url, headers=token_header(token_a))).json()["data"]
        self.strom_endpoints = {e["identifier"]: e["url"] for e in details["endpoints"]}
        answer = await http.post(self.strom_endpoints["credentials"],
                                 headers=token_header(token_a), json=self.credentials())
        body = answer.json()
        assert answer.status_code == 200 and body["status_code"] == 1000, answer.text
        self.token_c = body["data"]["token"]
        return body

    @property
    def auth(self) -> dict[str, str]:
        assert self.token_c is not None
        return token_header(self.token_c)


def _command_result(body: Any) -> bool:
    """A CommandResult as OCPI 2.2.1 (part 13.4.3) has it: `result`, and `message` a list of
    DisplayText (`DisplayText *`), if any."""
    if not isinstance(body, dict) or not isinstance(body.get("result"), str):
        return False
    message = body.get("message", [])
    return isinstance(message, list) and all(
        isinstance(m, dict) and isinstance(m.get("language"), str)
        and isinstance(m.get("text"), str) for m in message)
