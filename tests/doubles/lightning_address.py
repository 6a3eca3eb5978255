"""A driver's own lightning address provider (LUD-16), on loopback: it hands out real signed
invoices and, like any NIP-57 provider, can tell its `nostrPubkey`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from strom.http_server import HttpServer
from tests.doubles.edges import make_invoice


class AddressProvider:
    def __init__(self, user: str, nostr_pubkey: str | None = None) -> None:
        self.user = user
        self.nostr_pubkey = nostr_pubkey
        self.issued: list[str] = []  # every invoice handed out, in order
        self.metadata = json.dumps([["text/plain", f"Pay {user}"],
                                    ["text/identifier", f"{user}@provider"]])
        self.server: HttpServer | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"{self.user}@127.0.0.1:{self.server.port}"

    async def _pay_request(self, request: Request) -> JSONResponse:
        answer = {"tag": "payRequest", "minSendable": 1000, "maxSendable": 10**11,
                  "callback": f"http://127.0.0.1:{self.server.port}/cb",  # type: ignore[union-attr]
                  "metadata": self.metadata}
        if self.nostr_pubkey:
            answer.update(allowsNostr=True, nostrPubkey=self.nostr_pubkey)
        return JSONResponse(answer)

    async def _callback(self, request: Request) -> JSONResponse:
        amount = int(request.query_params["amount"])
        described = request.query_params.get("nostr") or self.metadata
        invoice = make_invoice(amount, description_hash=hashlib.sha256(
            described.encode()).digest())
        self.issued.append(invoice)
        return JSONResponse({"pr": invoice, "routes": []})

    @asynccontextmanager
    async def running(self) -> AsyncIterator[AddressProvider]:
        app = Starlette(routes=[Route(f"/.well-known/lnurlp/{self.user}", self._pay_request),
                                Route("/cb", self._callback)])
        self.server = HttpServer(app, "127.0.0.1", 0)
        await self.server.start()
        try:
            yield self
        finally:
            await self.server.close()
