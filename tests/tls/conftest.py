"""strom with `[tls]` ACME against Debian's Pebble on loopback."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from strom.app import StromApp
from strom.config import Settings
from tests.conftest import free_settings
from tests.tls.pebble import Pebble, free_port

DOMAIN = "localhost"


def acme_settings(pebble: Pebble, **tls: object) -> Settings:
    """strom on the HTTP port Pebble validates on, ordering from it."""
    return free_settings(
        http={"port": pebble.http_port},
        tls={"acme_directory": pebble.directory, "domains": [DOMAIN],
             "acme_ca_bundle": str(pebble.ca_bundle), "https_port": 0, **tls})


def client_context(root_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=root_pem)
    return context


async def served_certificate(port: int, *, sni: bool = True) -> bytes:
    """The DER leaf a new handshake gets (unverified: the placeholder is self-signed); without
    SNI like a charger that dials an IP address."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                    server_hostname=DOMAIN if sni else "")
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    assert der is not None
    return bytes(der)


async def until(probe: Callable[[], Awaitable[bool]], what: str, seconds: float = 10) -> None:
    """Wait for `probe` to say yes, or fail naming `what`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.1)


async def _running_pebble(tmp_path: Path, validity_seconds: int) -> AsyncIterator[Pebble]:
    server = Pebble(tmp_path, http_port=free_port(), validity_seconds=validity_seconds)
    await server.start()
    yield server
    server.stop()


@pytest.fixture
async def pebble(tmp_path: Path) -> AsyncIterator[Pebble]:
    async for server in _running_pebble(tmp_path, 3600):
        yield server


@pytest.fixture
async def short_pebble(tmp_path: Path) -> AsyncIterator[Pebble]:
    """Certificates living 9 s: renewed (at 2/3) after 6 s."""
    async for server in _running_pebble(tmp_path, 9):
        yield server


@pytest.fixture
async def acme_app(pebble: Pebble, data_dir: Path) -> AsyncIterator[StromApp]:
    async with StromApp(acme_settings(pebble), data_dir) as app:
        yield app
