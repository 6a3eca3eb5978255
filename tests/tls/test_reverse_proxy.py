"""strom behind a real TLS-terminating reverse proxy (Debian's nginx, the README's recipe),
with a certificate Pebble (a real ACME CA) issued for it.

Wallets (the lnurl library), chargers (the ocpp library over wss), browsers' live updates
(SSE) and nostr clients (the relay's websocket) all go through https://localhost:PORT;
forwarded headers count only from the configured proxy.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import lnurl
import pytest
from ocpp.v16 import ChargePoint, call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from strom.lnurl.links import pay_links
from strom.security import hash_password
from tests.money.conftest import CP, World, running_world
from tests.ocpp.test_connections import basic
from tests.tls.nginx import Nginx
from tests.tls.pebble import Pebble, free_port, issue_certificate

pytestmark = pytest.mark.timeout(60)


@dataclass
class Proxied:
    world: World
    nginx: Nginx
    root: str  # Pebble's root: all a client trusts

    @property
    def public_url(self) -> str:
        return f"https://localhost:{self.nginx.port}"

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.root)

    def client(self, source: str) -> httpx.AsyncClient:
        """A client connecting from `source` (any 127.x address is loopback on Linux)."""
        transport = httpx.AsyncHTTPTransport(local_address=source, verify=self.client_context())
        return httpx.AsyncClient(transport=transport, timeout=10)


@pytest.fixture
async def proxied(tmp_path: Path, data_dir: Path, pebble: Pebble,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Proxied]:
    cert, root = await issue_certificate(pebble, "localhost")
    root_file = tmp_path / "pebble-root.pem"
    root_file.write_text(root)
    monkeypatch.setenv("SSL_CERT_FILE", str(root_file))  # what the lnurl library's httpx trusts
    nginx = Nginx(tmp_path, free_port(), cert, cert)  # the key is in the same file
    async with running_world(
            data_dir, http={"public_url": f"https://localhost:{nginx.port}",
                            "trusted_proxies": ["127.0.0.1"]},
            lnurl={"callback_burst": 2, "callbacks_per_minute": 0.1},
            ocpp={"auth_failure_budget": 2}) as world:
        services = world.app.services
        assert services is not None and services.central_system is not None
        assert world.app.http is not None and world.app.relay is not None
        await nginx.start({"/": world.app.http.port, "/ocpp/": services.central_system.port,
                           "/relay": world.app.relay.port})
        try:
            yield Proxied(world, nginx, root)
        finally:
            nginx.stop()


async def test_a_wallet_pays_through_the_https_url(proxied: Proxied) -> None:
    links = pay_links(proxied.world.app.settings.public_url, CP)
    assert links.url.startswith(proxied.public_url + "/")
    # The sticker's QR, as the charger page shows it, leads a wallet to the https URL.
    async with proxied.client("127.0.0.1") as client:
        page = (await client.get(f"{proxied.public_url}/cp/{CP}")).text
    code = re.search(r"<code class=\"wrap\">(LNURL1[0-9A-Z]+)</code>", page)
    assert code is not None and str(lnurl.decode(code.group(1))).startswith(proxied.public_url)
    # The charger's public record names the https URL for its page and lightning address
    # (its NIP-05 name is ID@ the same host).
    async with proxied.client("127.0.0.1") as client:
        record = (await client.get(
            f"{proxied.public_url}/api/v1/public/charge-points/{CP}")).json()
    assert record["url"].startswith(proxied.public_url + "/")
    assert record["lud16"] == f"{CP}@localhost:{proxied.nginx.port}"
    pay = await lnurl.handle(code.group(1))
    assert isinstance(pay, lnurl.LnurlPayResponse)
    assert str(pay.callback).startswith(proxied.public_url + "/")
    action = await lnurl.execute_pay_request(pay, 1_000_000)
    assert str(action.successAction.url).startswith(proxied.public_url + "/s/")


async def test_a_charger_connects_over_wss_through_the_proxy(proxied: Proxied) -> None:
    services = proxied.world.app.services
    assert services is not None and services.central_system is not None
    await services.charge_points.add("cp-proxied", name="behind nginx", lat=50.0, lon=8.0)
    url = f"wss://localhost:{proxied.nginx.port}/ocpp/cp-proxied"
    async with connect(url, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                       ssl=proxied.client_context()) as ws:
        charger = ChargePoint("cp-proxied", ws)
        listening = asyncio.create_task(charger.start())
        answer = await charger.call(call.BootNotification(charge_point_model="m",
                                                          charge_point_vendor="v"))
        assert answer.status == "Accepted"
        assert services.central_system.is_connected("cp-proxied")
        listening.cancel()


async def test_live_updates_and_the_relay_through_the_proxy(proxied: Proxied) -> None:
    async with proxied.client("127.0.0.1") as client, client.stream(
            "GET", f"{proxied.public_url}/cp/{CP}/events") as stream:
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                break  # the first frame arrived unbuffered
    url = f"wss://localhost:{proxied.nginx.port}/relay"
    async with connect(url, ssl=proxied.client_context()) as ws:
        await ws.send(json.dumps(["REQ", "sub", {"kinds": [0], "limit": 1}]))
        while (message := json.loads(await ws.recv()))[0] != "EOSE":
            assert message[0] in ("AUTH", "EVENT")  # NIP-42 challenge first


async def _invoice(client: httpx.AsyncClient, callback: str, spoof: str) -> bool:
    answer = await client.get(callback, params={"amount": 1_000_000},
                              headers={"X-Forwarded-For": spoof})
    return "pr" in answer.json()


async def test_forwarded_addresses_count_only_from_the_proxy(proxied: Proxied) -> None:
    app = proxied.world.app
    assert app.http is not None
    pay = (await proxied.world.http.get(f"/lnurlp/{CP}")).json()
    direct = str(pay["callback"]).replace(proxied.public_url, app.http_url)
    via_proxy = str(pay["callback"])
    # Straight to strom from 127.0.0.2, not a trusted proxy: each made-up X-Forwarded-For is
    # ignored, and all its requests share one budget (burst 2).
    async with proxied.client("127.0.0.2") as client:
        assert [await _invoice(client, direct, f"198.51.100.{i}") for i in range(3)] == [
            True, True, False]
    # Through nginx, each client is itself, whatever it writes into the header.
    async with proxied.client("127.0.0.3") as client:
        assert [await _invoice(client, via_proxy, f"198.51.100.{i}") for i in range(3)] == [
            True, True, False]
    async with proxied.client("127.0.0.4") as client:
        assert await _invoice(client, via_proxy, "127.0.0.3")


async def _handshake(proxied: Proxied, source: str, cp_id: str, password: str) -> int:
    """The HTTP status of an OCPP handshake through nginx from `source`."""
    url = f"wss://localhost:{proxied.nginx.port}/ocpp/{cp_id}"
    try:
        async with connect(url, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           ssl=proxied.client_context(), local_addr=(source, 0),
                           additional_headers=basic(cp_id, password)):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_ocpp_password_backoff_counts_the_charger_not_the_proxy(proxied: Proxied) -> None:
    services = proxied.world.app.services
    assert services is not None
    for cp_id in ("cp-a", "cp-b"):
        await services.charge_points.add(cp_id, name=cp_id, lat=50.0, lon=8.0,
                                         password_hash=hash_password("right"))
    # 127.0.0.3 guesses (budget 2): its address is throttled, even for another charger id …
    for _ in range(4):
        await _handshake(proxied, "127.0.0.3", "cp-a", "guess")
    assert await _handshake(proxied, "127.0.0.3", "cp-b", "guess") == 429
    # … while another charger behind the same proxy is still heard.
    assert await _handshake(proxied, "127.0.0.4", "cp-b", "guess") == 401
    assert await _handshake(proxied, "127.0.0.4", "cp-b", "right") == 101


async def _reqs(proxied: Proxied, source: str, count: int) -> list[str]:
    """`count` REQs over one relay connection through nginx from `source`: what each got."""
    url = f"wss://localhost:{proxied.nginx.port}/relay"
    answers: list[str] = []
    async with connect(url, ssl=proxied.client_context(), local_addr=(source, 0)) as ws:
        for i in range(count):
            await ws.send(json.dumps(["REQ", f"s{i}", {"kinds": [0], "limit": 1}]))
        while len(answers) < count:
            message = json.loads(await ws.recv())
            if message[0] in ("EOSE", "CLOSED"):
                answers.append(message[0] if message[0] == "EOSE" else message[2])
    return answers


async def test_relay_limits_count_each_client_behind_the_proxy(proxied: Proxied) -> None:
    # 127.0.0.3 floods the relay over several connections (each within its own burst of 100,
    # together past the address's 300) …
    limits = proxied.world.app.relay.limits  # type: ignore[union-attr]
    per_connection = limits.req_burst
    connections = limits.address_req_burst // per_connection + 2
    flood = [a for _ in range(connections) for a in await _reqs(proxied, "127.0.0.3",
                                                                per_connection)]
    assert any(a.startswith("rate-limited: too many REQ and COUNT from your address")
               for a in flood)
    # … and another client behind the same proxy is not limited with it.
    assert await _reqs(proxied, "127.0.0.4", 5) == ["EOSE"] * 5
