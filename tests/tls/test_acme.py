"""Managed TLS: strom orders, serves and renews its certificate from a real ACME server (Pebble).

Must show (issue 22): first issuance, renewal before expiry with short-lived certificates, a
bad ACME answer keeps the old certificate and logs why, and a charger on `wss` stays
connected across the hot reload.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import stat
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography import x509
from ocpp.v16 import ChargePoint, call
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from websockets.asyncio.client import connect

from strom.app import StromApp
from strom.errors import UserError
from strom.http_server import HttpServer
from strom.tls.certs import CertPaths
from tests.conftest import free_settings
from tests.tls.conftest import (
    DOMAIN,
    acme_settings,
    client_context,
    served_certificate,
    until,
)
from tests.tls.pebble import Pebble

pytestmark = pytest.mark.timeout(60)


def issuer(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).issuer.rfc4514_string()


async def until_issued(app: StromApp) -> None:
    assert app.https is not None

    async def pebble_issued() -> bool:
        return "Pebble" in issuer(await served_certificate(app.https.port))  # type: ignore[union-attr]

    await until(pebble_issued, "the Pebble certificate is served")


async def test_first_issuance_serves_https_and_wss(acme_app: StromApp, pebble: Pebble,
                                                   data_dir: Path) -> None:
    await until_issued(acme_app)
    roots = await pebble.root()
    assert acme_app.https is not None
    # A client that trusts only Pebble's root reaches strom's pages by name …
    async with httpx.AsyncClient(verify=client_context(roots)) as client:
        answer = await client.get(f"https://{DOMAIN}:{acme_app.https.port}/healthz")
    assert answer.status_code == 200
    tls = answer.json()["checks"]["tls"]
    assert tls["acme"] and not tls["placeholder"] and tls["names"] == [DOMAIN]
    # … and OCPP over wss with the same certificate.
    central = acme_app.services.central_system  # type: ignore[union-attr]
    assert central is not None and central.url.startswith("wss://")
    assert "Pebble" in issuer(await served_certificate(central.port))
    # The key and certificate are the owner's only.
    stored = CertPaths.acme(data_dir).cert
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert acme_app.settings.public_url == f"https://{DOMAIN}:{acme_app.https.port}"


async def test_stored_certificate_is_served_after_a_restart(pebble: Pebble,
                                                            data_dir: Path) -> None:
    async with StromApp(acme_settings(pebble), data_dir) as app:
        await until_issued(app)
        first = await served_certificate(app.https.port)  # type: ignore[union-attr]
    pebble.stop()  # no ACME server now: the stored certificate still serves at once
    async with StromApp(acme_settings(pebble), data_dir) as app:
        assert await served_certificate(app.https.port) == first  # type: ignore[union-attr]


class Charger(ChargePoint):
    """A charger from the ocpp library: it only sends."""


async def test_renewal_before_expiry_keeps_wss_chargers(short_pebble: Pebble,
                                                        data_dir: Path) -> None:
    async with StromApp(acme_settings(short_pebble), data_dir) as app:
        assert app.services is not None and app.services.central_system is not None
        await app.services.charge_points.add("cp-tls", name="tls", lat=52.5, lon=13.4)
        await until_issued(app)
        central = app.services.central_system
        first = await served_certificate(central.port)
        first_cert = x509.load_der_x509_certificate(first)
        roots = await short_pebble.root()
        url = f"wss://{DOMAIN}:{central.port}/ocpp/cp-tls"
        async with connect(url, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           ssl=client_context(roots)) as ws:
            charger = Charger("cp-tls", ws)
            listening = asyncio.create_task(charger.start())
            await charger.call(call.BootNotification(charge_point_model="m",
                                                     charge_point_vendor="v"))
            # Renewed at 2/3 of the 9 s lifetime, before it expires.
            async def renewed_yet() -> bool:
                return await served_certificate(central.port) != first

            await until(renewed_yet, "a renewed certificate", seconds=15)
            renewed = x509.load_der_x509_certificate(await served_certificate(central.port))
            assert renewed.not_valid_before_utc < first_cert.not_valid_after_utc
            assert renewed.serial_number != first_cert.serial_number
            # The charger connected before the reload is still there and still heard.
            assert central.is_connected("cp-tls")
            answer = await charger.call(call.Heartbeat())
            assert answer.current_time
            now_served = await served_certificate(central.port)
            assert await served_certificate(central.port, sni=False) == now_served
            assert await served_certificate(app.https.port) == now_served  # type: ignore[union-attr]
            listening.cancel()


class _Garbage:
    """An "ACME server" that answers 500 or garbage."""

    def __init__(self, status: int, body: str) -> None:
        async def answer(_request: object) -> PlainTextResponse:
            return PlainTextResponse(body, status_code=status)

        self.server = HttpServer(Starlette(routes=[Route("/dir", answer)]), "127.0.0.1", 0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/dir"


@pytest.mark.parametrize("failure", ["stopped", "500", "garbage"])
async def test_bad_acme_answer_keeps_the_certificate_and_says_why(
        acme_app: StromApp, pebble: Pebble, failure: str,
        caplog: pytest.LogCaptureFixture) -> None:
    await until_issued(acme_app)
    tls = acme_app.services.tls  # type: ignore[union-attr]
    assert tls is not None and acme_app.https is not None
    before = await served_certificate(acme_app.https.port)
    garbage = None
    if failure == "stopped":
        pebble.stop()
    else:
        garbage = _Garbage(500, "oops") if failure == "500" else _Garbage(200, "{not json")
        await garbage.server.start()
        acme_app.settings.tls.acme_directory = garbage.url
    caplog.set_level(logging.WARNING, logger="strom.tls.manager")
    try:
        assert await tls.renew() is False
    finally:
        if garbage is not None:
            await garbage.server.close()
    assert await served_certificate(acme_app.https.port) == before
    assert "Pebble" in issuer(before)
    [line] = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert "keeping the current certificate" in line and DOMAIN in line
    assert "next try at" in line


async def test_own_certificate_serves_https_and_wss(tmp_path: Path, data_dir: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert(DOMAIN)
    chain = tmp_path / "own.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(chain))  # key inside the file
    settings = free_settings(tls={"cert_file": str(chain), "domains": [DOMAIN], "https_port": 0})
    async with StromApp(settings, data_dir) as app:
        assert app.https is not None and app.services is not None
        central = app.services.central_system
        assert central is not None and central.url.startswith("wss://")
        context = ssl.create_default_context()
        ca.configure_trust(context)
        async with httpx.AsyncClient(verify=context) as client:
            answer = await client.get(f"https://{DOMAIN}:{app.https.port}/healthz")
        assert answer.status_code == 200
        assert await served_certificate(central.port) == await served_certificate(
            app.https.port)


async def test_a_bad_own_certificate_stops_the_start_with_one_line(tmp_path: Path,
                                                                   data_dir: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    settings = free_settings(tls={"cert_file": str(broken), "https_port": 0})
    with pytest.raises(UserError) as info:
        async with StromApp(settings, data_dir):
            pass
    message = str(info.value)
    assert message.startswith("[tls] cert_file") and str(broken) in message
    assert "\n" not in message


async def test_a_placeholder_from_an_earlier_run_is_replaced_at_once(
        pebble: Pebble, data_dir: Path) -> None:
    unreachable = acme_settings(pebble, acme_directory="http://127.0.0.1:9/dir")
    async with StromApp(unreachable, data_dir) as app:  # no ACME server: the placeholder
        placeholder = await served_certificate(app.https.port)  # type: ignore[union-attr]
        assert "Pebble" not in issuer(placeholder)
    async with StromApp(acme_settings(pebble), data_dir) as app:
        await until_issued(app)  # ordered at start, not at 2/3 of the placeholder's week
