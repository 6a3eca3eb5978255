"""The fence around outbound fetches (strom/outbound.py), against real HTTP servers on loopback:
fenced targets refused before any byte is sent, a body cut at the cap without reading it all,
one total deadline however slowly the bytes come, redirects fenced hop by hop."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from strom.app import StromApp
from strom.config import OutboundSettings
from strom.http_server import HttpServer
from strom.lightning.address import (
    LightningAddressError,
    LightningAddressRefused,
    invoice_for_address,
)
from strom.outbound import MARKER_HEADER, Outbound, OutboundError, OutboundRefused, is_public
from tests.conftest import free_settings

CHUNK = 64 * 1024


class Server:
    """A misbehaving HTTP server: a dribble, redirects; it keeps the requests it got."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.redirect_to = ""
        self.http: HttpServer | None = None

    @property
    def url(self) -> str:
        assert self.http is not None
        return f"http://127.0.0.1:{self.http.port}"

    def app(self) -> Starlette:
        async def dribble(request: Request) -> Response:
            async def a_byte_at_a_time() -> AsyncIterator[bytes]:
                for _ in range(100):
                    yield b" "
                    await asyncio.sleep(0.3)
            return StreamingResponse(a_byte_at_a_time(), media_type="application/json")

        async def ok(request: Request) -> JSONResponse:
            self.requests.append(request)
            return JSONResponse({"ok": True})

        async def redirect(request: Request) -> RedirectResponse:
            return RedirectResponse(self.redirect_to, status_code=302)

        return Starlette(routes=[Route("/dribble", dribble),
                                 Route("/ok", ok), Route("/redirect", redirect)])


@asynccontextmanager
async def running() -> AsyncIterator[Server]:
    server = Server()
    server.http = HttpServer(server.app(), "127.0.0.1", 0)
    await server.http.start()
    try:
        yield server
    finally:
        await server.http.close()


def outbound(**settings: object) -> Outbound:
    return Outbound(OutboundSettings(**{"allow_private": True, **settings}))


async def test_loopback_and_private_targets_are_refused_before_any_request() -> None:
    async with running() as server:
        fenced = Outbound(OutboundSettings())
        with pytest.raises(OutboundRefused, match="not a public address"):
            await fenced.get(server.url + "/ok")
        with pytest.raises(LightningAddressRefused, match="not a public address"):
            await invoice_for_address(f"admin@127.0.0.1:{server.http.port}", 1000,
                                      outbound=fenced)
        assert server.requests == []
        assert (await outbound().get(server.url + "/ok")).status == 200


@pytest.mark.parametrize(("address", "public"), [
    ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.1", False), ("172.16.0.1", False),
    ("169.254.169.254", False), ("0.0.0.0", False), ("224.0.0.1", False), ("100.64.0.1", False),
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
    ("ff02::1", False), ("8.8.8.8", True), ("2a00:1450:4001:82a::200e", True),
])
def test_what_counts_as_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


async def test_a_huge_body_is_cut_at_the_cap_without_reading_it_all() -> None:
    """A raw server, so that `sent` counts bytes the socket took, not bytes a framework
    dropped after the client left."""
    sent = 0
    done = asyncio.Event()

    async def sixty_megabytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (60 * 1024 * 1024))
        try:
            for _ in range(60 * 1024 * 1024 // CHUNK):
                writer.write(b"x" * CHUNK)
                await writer.drain()
                sent += CHUNK
        except ConnectionError:
            pass
        finally:
            writer.close()
            done.set()

    server = await asyncio.start_server(sixty_megabytes, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(OutboundError, match="more than 1048576 bytes"):
            await outbound().get(f"http://127.0.0.1:{port}/feed")
        async with asyncio.timeout(5):
            await done.wait()
        # A payer's lightning address answering 60 MB: cut at the LNURL cap (64 KiB).
        done.clear()
        with pytest.raises(LightningAddressError, match="more than 65536 bytes"):
            await invoice_for_address(f"big@127.0.0.1:{port}", 1000, outbound=outbound())
        async with asyncio.timeout(5):
            await done.wait()
    finally:
        server.close()
    # Socket buffers take a few MB more than the cap; nothing near the 60 MB offered.
    assert sent < 16 * 1024 * 1024


async def test_one_deadline_for_the_whole_fetch_not_per_read() -> None:
    async with running() as server:
        began = time.monotonic()
        with pytest.raises(OutboundError, match="within 1 s"):
            await outbound(timeout_seconds=1.0).get(server.url + "/dribble")
        assert time.monotonic() - began < 1.5


async def test_only_a_few_fetches_at_once() -> None:
    async with running() as server:
        limited = outbound(timeout_seconds=1.0, concurrency=2)
        began = time.monotonic()
        results = await asyncio.gather(*(limited.get(server.url + "/dribble")
                                         for _ in range(4)), return_exceptions=True)
        assert all(isinstance(r, OutboundError) for r in results)
        # Two ran to their deadline; the other two waited for a slot inside theirs.
        assert time.monotonic() - began < 1.5


async def test_redirects_are_fenced_hop_by_hop() -> None:
    async with running() as server:
        assert server.http is not None
        own = outbound()
        own.own.add(("127.0.0.1", 9))  # pretend strom itself listens there
        server.redirect_to = "http://127.0.0.1:9/admin"
        with pytest.raises(OutboundRefused, match="strom itself"):
            await own.get(server.url + "/redirect")
        server.redirect_to = server.url + "/ok"
        assert (await own.get(server.url + "/redirect")).body == b'{"ok":true}'


async def test_requests_carry_the_marker_and_strom_knows_it() -> None:
    async with running() as server:
        out = outbound()
        await out.get(server.url + "/ok")
        headers = server.requests[-1].headers
        assert out.is_marked(headers) and not outbound().is_marked(headers)
        assert not out.is_marked({MARKER_HEADER: "ä-not-ascii"})
        assert headers["host"] == f"127.0.0.1:{server.http.port}"
        assert MARKER_HEADER.lower() in headers


async def test_strom_knows_its_own_addresses_before_any_lookup(data_dir: Path) -> None:
    """Issue 26: a refund to `other-charger@<strom's public host>` is refused unfetched."""
    settings = free_settings(http={"public_url": "https://strom.example"})
    async with StromApp(settings, data_dir) as app:
        own = app.services.outbound
        assert own.is_own("https://strom.example/.well-known/lnurlp/cp-b")
        assert own.is_own(f"http://127.0.0.1:{app.http.port}/lnurlp/cp-b/callback")
        assert not own.is_own("https://wallet.example/.well-known/lnurlp/alice")
        with pytest.raises(LightningAddressRefused, match="strom itself"):
            await invoice_for_address("cp-b@strom.example", 1000, outbound=own)
        with pytest.raises(OutboundRefused, match="strom itself"):
            await own.get(f"http://localhost:{app.http.port}/healthz")
