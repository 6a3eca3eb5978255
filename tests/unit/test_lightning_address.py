"""Paying a lightning address through a tiny LNURL service on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from strom.events import EventBus
from strom.http_server import HttpServer
from strom.lightning.address import (
    LightningAddressError,
    address_url,
    invoice_for_address,
    pay_lightning_address,
)
from strom.lightning.dev import DevWallet
from strom.lightning.wallet import PaymentStatus
from strom.store.db import Database
from tests.conftest import loopback_outbound
from tests.doubles.edges import make_invoice

METADATA = json.dumps([["text/plain", "Tips for alice"], ["text/identifier", "alice@127.0.0.1"]])


@dataclass
class LnurlService:
    """A LUD-16 service; its knobs make it misbehave in the ways the payer must catch."""

    port: int = 0
    refuse: str | None = None
    invoice_amount_delta: int = 0
    wrong_metadata_hash: bool = False
    callbacks: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def pay_request(request: Request) -> JSONResponse:
            if request.path_params["user"] != "alice":
                return JSONResponse({"status": "ERROR", "reason": "no such user"}, 404)
            return JSONResponse({
                "tag": "payRequest", "minSendable": 1_000, "maxSendable": 1_000_000,
                "metadata": METADATA, "commentAllowed": 10,
                "callback": f"http://127.0.0.1:{self.port}/cb?user=alice"})

        async def callback(request: Request) -> JSONResponse:
            self.callbacks.append(dict(request.query_params))
            if self.refuse:
                return JSONResponse({"status": "ERROR", "reason": self.refuse})
            described = b"other" if self.wrong_metadata_hash else METADATA.encode()
            amount = int(request.query_params["amount"]) + self.invoice_amount_delta
            return JSONResponse({"pr": make_invoice(
                amount, description_hash=hashlib.sha256(described).digest()), "routes": []})

        return Starlette(routes=[Route("/.well-known/lnurlp/{user}", pay_request),
                                 Route("/cb", callback)])


@pytest.fixture
async def service() -> AsyncIterator[LnurlService]:
    svc = LnurlService()
    server = HttpServer(svc.app(), "127.0.0.1", 0)
    svc.port = server.port
    await server.start()
    yield svc
    await server.close()


@pytest.fixture
async def wallet(db: Database, tmp_path: Path) -> DevWallet:
    return DevWallet(db, EventBus(), tmp_path / "data")


async def test_pays_the_checked_invoice(service: LnurlService, wallet: DevWallet) -> None:
    address = f"alice@127.0.0.1:{service.port}"
    result = await pay_lightning_address(wallet, address, 21_000, "thanks-for-the-charge",
                                        outbound=loopback_outbound())
    assert result.status == PaymentStatus.SUCCEEDED and result.amount_msat == 21_000
    # The callback kept its own query, got the amount, and a comment cut to commentAllowed.
    assert service.callbacks == [{"user": "alice", "amount": "21000", "comment": "thanks-for"}]
    stored = await wallet.payment_status(result.payment_hash)
    assert stored is not None and stored.status == PaymentStatus.SUCCEEDED


@pytest.mark.parametrize(("knob", "value", "message"), [
    ("refuse", "wallet is closed", "refused: wallet is closed"),
    ("invoice_amount_delta", 1, "not the 21000 msat asked for"),
    ("wrong_metadata_hash", True, "description hash does not match"),
])
async def test_bad_answers_are_not_paid(service: LnurlService, wallet: DevWallet, knob: str,
                                        value: Any, message: str) -> None:
    setattr(service, knob, value)
    with pytest.raises(LightningAddressError, match=message):
        await pay_lightning_address(wallet, f"alice@127.0.0.1:{service.port}", 21_000,
                                    outbound=loopback_outbound())
    assert await wallet.repo.payments() == []


async def test_amount_outside_range_is_refused_before_the_callback(
        service: LnurlService) -> None:
    with pytest.raises(LightningAddressError, match="accepts 1 to 1000 sat, not 2000 sat"):
        await invoice_for_address(f"alice@127.0.0.1:{service.port}", 2_000_000, outbound=loopback_outbound())
    assert service.callbacks == []


async def test_unknown_user_and_unreachable_host(service: LnurlService) -> None:
    with pytest.raises(LightningAddressError, match="refused: no such user"):
        await invoice_for_address(f"bob@127.0.0.1:{service.port}", 5_000, outbound=loopback_outbound())
    with pytest.raises(LightningAddressError, match="cannot reach"):
        await invoice_for_address("alice@127.0.0.1:1", 5_000, outbound=loopback_outbound())


def test_address_urls() -> None:
    assert address_url("Satoshi@Bitcoin.org") == "https://bitcoin.org/.well-known/lnurlp/satoshi"
    assert address_url("me@abc.onion") == "http://abc.onion/.well-known/lnurlp/me"
    assert address_url("cp@127.0.0.1:8000") == "http://127.0.0.1:8000/.well-known/lnurlp/cp"
    assert address_url("@example.com") == "https://example.com/.well-known/lnurlp/_"
    for bad in ("nobody", "a b@example.com", "me@exa mple.com", "me@", "me@ex/../x"):
        with pytest.raises(LightningAddressError, match="not a lightning address"):
            address_url(bad)
