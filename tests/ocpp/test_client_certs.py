"""Security profiles 2 and 3 with certificates made here (trustme): a profile 3 charger gets
in only with a client certificate for its id from the configured CA; a certificate from
another CA is refused at the TLS handshake; chargers on other profiles share the port."""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from strom.store.db import Database
from tests.ocpp.conftest import Ocpp, start_ocpp

BOOT = json.dumps([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])


@dataclass
class Pki:
    server_ca: trustme.CA
    client_ca: trustme.CA
    ocpp: Ocpp

    def context(self, client: trustme.LeafCert | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.server_ca.configure_trust(context)
        if client is not None:
            client.configure_cert(context)
        return context

    def url(self, cp_id: str) -> str:
        return f"wss://127.0.0.1:{self.ocpp.central.port}/ocpp/{cp_id}"


async def pki_server(db: Database, tmp_path: Path, **settings: object) -> tuple[Pki, object]:
    server_ca, client_ca = trustme.CA(), trustme.CA()
    cert = server_ca.issue_cert("127.0.0.1")
    cert_path, key_path, ca_path = (tmp_path / name for name in ("c.pem", "k.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    client_ca.cert_pem.write_to_path(str(ca_path))
    ocpp, bus = await start_ocpp(db, tls_cert=str(cert_path), tls_key=str(key_path),
                                 tls_client_ca=str(ca_path), **settings)
    await ocpp.charge_points.update("cp-1", security_profile=3)
    return Pki(server_ca, client_ca, ocpp), bus


@pytest.fixture
async def pki(db: Database, tmp_path: Path) -> AsyncIterator[Pki]:
    made, bus = await pki_server(db, tmp_path)
    yield made
    await made.ocpp.central.close()
    await bus.close()  # type: ignore[attr-defined]


async def boots(pki: Pki, cp_id: str, client: trustme.LeafCert | None) -> bool:
    async with connect(pki.url(cp_id), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                       ssl=pki.context(client)) as ws:
        await ws.send(BOOT)
        return bool(json.loads(await ws.recv())[0] == 3)


async def test_a_client_certificate_for_its_id_lets_a_profile_3_charger_in(pki: Pki) -> None:
    assert await boots(pki, "cp-1", pki.client_ca.issue_cert("cp-1", common_name="cp-1"))


async def test_a_certificate_from_another_ca_is_refused_at_the_handshake(pki: Pki) -> None:
    rogue = trustme.CA().issue_cert("cp-1", common_name="cp-1")
    with pytest.raises((ssl.SSLError, OSError, InvalidHandshake)) as refused:
        await boots(pki, "cp-1", rogue)
    assert not isinstance(refused.value, InvalidStatus)  # no HTTP answer: TLS said no


async def test_no_certificate_or_another_chargers_is_refused(pki: Pki) -> None:
    for client in (None, pki.client_ca.issue_cert("cp-2", common_name="cp-2")):
        with pytest.raises(InvalidStatus) as refused:
            await boots(pki, "cp-1", client)
        assert refused.value.response.status_code == 403


async def test_a_pinned_certificate_is_the_only_one(pki: Pki) -> None:
    pinned = pki.client_ca.issue_cert("cp-1", common_name="cp-1")
    other = pki.client_ca.issue_cert("cp-1", common_name="cp-1")
    der = ssl.PEM_cert_to_DER_cert(pinned.cert_chain_pems[0].bytes().decode())
    await pki.ocpp.charge_points.update("cp-1",
                                        client_cert_sha256=hashlib.sha256(der).hexdigest())
    assert await boots(pki, "cp-1", pinned)
    with pytest.raises(InvalidStatus) as refused:
        await boots(pki, "cp-1", other)
    assert refused.value.response.status_code == 403


async def test_chargers_on_other_profiles_share_the_port(pki: Pki) -> None:
    assert await boots(pki, "cp-2", None)


async def test_required_client_certificates_refuse_at_the_handshake(db: Database,
                                                                    tmp_path: Path) -> None:
    made, bus = await pki_server(db, tmp_path, tls_client_required=True)
    try:
        with pytest.raises((ssl.SSLError, OSError, InvalidHandshake)) as refused:
            await boots(made, "cp-2", None)
        assert not isinstance(refused.value, InvalidStatus)
        assert await boots(made, "cp-1", made.client_ca.issue_cert("cp-1", common_name="cp-1"))
    finally:
        await made.ocpp.central.close()
        await bus.close()  # type: ignore[attr-defined]


async def test_profile_2_and_3_chargers_are_refused_over_plain_ws(ocpp: Ocpp) -> None:
    for profile in (2, 3):
        await ocpp.charge_points.update("cp-1", security_profile=profile)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
                pass
        assert refused.value.response.status_code == 403
