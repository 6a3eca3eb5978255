"""Certificate signing with strom's own CA: a charger sends a CSR (2.0.1 SignCertificate with
the ocpp library's v201 ChargePoint; 1.6 with the security whitepaper's raw frames), strom
signs it for the charger's id and sends CertificateSigned, and the charger then logs in with
security profile 3 using that certificate. A CSR naming another charger is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from strom.cli import cli
from strom.errors import UserError
from strom.ocpp.cert_signing import (
    CA_KEY_FILE,
    MAX_CSR_CHARS,
    CertificateSigning,
    CsrRefused,
    SigningCa,
    check_csr,
    create_ca,
    load_ca,
)
from strom.security import hash_password
from strom.store.certificates import CertificateRepository
from strom.store.db import Database
from tests.ocpp.conftest import PASSWORD, Accepting, Ocpp, start_ocpp
from tests.polling import eventually

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def basic(cp_id: str) -> str:
    return "Basic " + base64.b64encode(f"{cp_id}:{PASSWORD}".encode()).decode()


def csr_for(*names: str, key: Key | None = None) -> tuple[str, Key]:
    """A CSR with these common names (as a charger makes it) and its key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")]
                        + [x509.NameAttribute(NameOID.COMMON_NAME, n) for n in names])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


@pytest.fixture
def ca(tmp_path: Path) -> SigningCa:
    return SigningCa.load(*create_ca(tmp_path))


# --- the CSR checks and the certificate ------------------------------------------------------

def test_a_signed_certificate_is_for_the_id_and_client_auth_only(ca: SigningCa) -> None:
    pem, key = csr_for("cp-1")
    issued = ca.sign(pem, "cp-1")
    leaf = x509.load_pem_x509_certificates(issued.chain_pem.encode())[0]
    leaf.verify_directly_issued_by(ca.cert)
    assert leaf.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cp-1")])
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert issued.sha256 == leaf.fingerprint(hashes.SHA256()).hex()


@pytest.mark.parametrize(("pem", "why"), [
    (csr_for("cp-2")[0], "common name must be this charger's id"),  # impersonation
    (csr_for()[0], "not missing"),
    (csr_for("cp-1", "cp-2")[0], "common name"),
    (csr_for("cp-1", key=rsa.generate_private_key(65537, 1024))[0], "RSA key of 1024 bits"),
    (csr_for("cp-1", key=ec.generate_private_key(ec.SECP521R1()))[0], "secp521r1"),
    ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
     "not a PEM"),
    ("x" * (MAX_CSR_CHARS + 1), "at most"),
])
def test_csrs_strom_does_not_sign(ca: SigningCa, pem: str, why: str) -> None:
    with pytest.raises(CsrRefused, match=why):
        ca.sign(pem, "cp-1")


def test_a_csr_whose_signature_does_not_hold_is_refused() -> None:
    pem, _ = csr_for("cp-1")
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(
        serialization.Encoding.DER))
    der[-5] ^= 0x01  # a bit of the signature
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CsrRefused, match="signature"):
        check_csr(forged.decode(), "cp-1")


def test_the_ca_is_made_once_and_private(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ocpp", "ca", "init", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(tmp_path / CA_KEY_FILE).st_mode) == 0o600
    assert load_ca("", "", tmp_path) is not None  # found in the data dir
    again = CliRunner().invoke(cli, ["ocpp", "ca", "init", "--data-dir", str(tmp_path)])
    assert isinstance(again.exception, UserError) and "exists" in str(again.exception)
    shown = CliRunner().invoke(cli, ["ocpp", "ca", "show", "--data-dir", str(tmp_path)])
    assert shown.output.startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(UserError, match="set both"):
        load_ca(str(tmp_path / "ocpp-ca.pem"), "", None)
    with pytest.raises(UserError, match="ca_cert/ca_key"):
        load_ca(str(tmp_path / CA_KEY_FILE), str(tmp_path / CA_KEY_FILE), None)


# --- through OCPP --------------------------------------------------------------------------

@dataclass
class Signing:
    ocpp: Ocpp
    server_ca: trustme.CA
    tmp: Path

    def url(self, cp_id: str) -> str:
        return f"wss://127.0.0.1:{self.ocpp.central.port}/ocpp/{cp_id}"

    def connect(self, cp_id: str, protocol: str, context: ssl.SSLContext) -> Any:
        """A charger's connection with its password (profile 2) over wss://."""
        return connect(self.url(cp_id), subprotocols=[protocol],  # type: ignore[list-item]
                       ssl=context, additional_headers={"Authorization": basic(cp_id)})

    def context(self, chain_pem: str | None = None, key: Key | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.server_ca.configure_trust(context)
        if chain_pem is not None and key is not None:
            cert, key_file = self.tmp / "client.pem", self.tmp / "client.key"
            cert.write_text(chain_pem)
            key_file.write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            context.load_cert_chain(cert, key_file)
        return context


@pytest.fixture
async def signing(db: Database, tmp_path: Path) -> AsyncIterator[Signing]:
    """wss:// with strom's CA (no tls_client_ca): cp-1 starts on profile 2."""
    server_ca = trustme.CA()
    cert = server_ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    ca_cert, ca_key = create_ca(tmp_path)
    ocpp, bus = await start_ocpp(db, tls_cert=str(cert_path), tls_key=str(key_path),
                                 ca_cert=str(ca_cert), ca_key=str(ca_key), call_timeout=2.0,
                                 meter_sample_interval=0)  # no GetConfiguration in between
    ocpp.central.authorizer = Accepting()
    for cp_id in ("cp-1", "cp-2"):
        await ocpp.charge_points.update(cp_id, security_profile=2,
                                        password_hash=hash_password(PASSWORD))
    yield Signing(ocpp, server_ca, tmp_path)
    await ocpp.central.close()
    await bus.close()


class Installing(ChargePoint):
    """A 2.0.1 charger that installs the certificate strom sends."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.installed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, certificate_chain: str,
                                    **_: Any) -> call_result.CertificateSigned:
        self.installed.set_result(certificate_chain)
        return call_result.CertificateSigned(status="Accepted")


async def boot201(signing: Signing, cp_id: str, context: ssl.SSLContext) -> str:
    async with signing.connect(cp_id, "ocpp2.0.1", context) as ws:
        charger = ChargePoint(cp_id, ws)
        task = asyncio.create_task(charger.start())
        try:
            result = await charger.call(call.BootNotification(
                charging_station={"model": "M", "vendorName": "V"}, reason="PowerUp"))
            return str(result.status)
        finally:
            task.cancel()


async def test_a_201_charger_gets_a_certificate_and_logs_in_with_profile_3(
        signing: Signing) -> None:
    pem, key = csr_for("cp-1")
    async with signing.connect("cp-1", "ocpp2.0.1", signing.context()) as ws:
        charger = Installing("cp-1", ws)
        task = asyncio.create_task(charger.start())
        try:
            await charger.call(call.BootNotification(
                charging_station={"model": "M", "vendorName": "V"}, reason="PowerUp"))
            answer = await charger.call(call.SignCertificate(
                csr=pem, certificate_type="ChargingStationCertificate"))
            assert answer.status == "Accepted"
            chain = await asyncio.wait_for(charger.installed, 5)
            signed = await eventually(lambda: signing.ocpp.event_log.recent("cp-1"),
                                      lambda log: any(e["kind"] == "certificate_signed"
                                                      for e in log))
        finally:
            task.cancel()
    entry = next(e for e in signed if e["kind"] == "certificate_signed")
    assert entry["payload"]["status"] == "Accepted"
    # The charger moves to profile 3 and logs in with its new certificate, only with it.
    await signing.ocpp.charge_points.update("cp-1", security_profile=3)
    assert await boot201(signing, "cp-1", signing.context(chain, key)) == "Accepted"
    with pytest.raises(InvalidStatus) as refused:
        await boot201(signing, "cp-1", signing.context())
    assert refused.value.response.status_code == 403
    # Its certificate is no other charger's.
    await signing.ocpp.charge_points.update("cp-2", security_profile=3)
    with pytest.raises(InvalidStatus):
        await boot201(signing, "cp-2", signing.context(chain, key))


async def call16(ws: Any, unique_id: str, action: str, payload: dict[str, Any]) -> Any:
    await ws.send(json.dumps([2, unique_id, action, payload]))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def test_a_16_charger_asking_for_another_chargers_certificate_is_refused(
        signing: Signing) -> None:
    """The attack: cp-1 sends a CSR naming cp-2, to log in as cp-2 with profile 3."""
    async with signing.connect("cp-1", "ocpp1.6", signing.context()) as ws:
        await call16(ws, "b", "BootNotification", {"chargePointVendor": "V",
                                                   "chargePointModel": "M"})
        answer = await call16(ws, "s1", "SignCertificate", {"csr": csr_for("cp-2")[0]})
        assert answer == [3, "s1", {"status": "Rejected"}]
        # Nothing follows: no certificate was made.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
    refused = await signing.ocpp.event_log.recent("cp-1")
    assert any(e["kind"] == "csr_refused" and "cp-2" in e["payload"]["reason"] for e in refused)


async def test_a_16_charger_gets_its_certificate_in_raw_frames(signing: Signing) -> None:
    pem, key = csr_for("cp-1", key=rsa.generate_private_key(65537, 2048))
    async with signing.connect("cp-1", "ocpp1.6", signing.context()) as ws:
        await call16(ws, "b", "BootNotification", {"chargePointVendor": "V",
                                                   "chargePointModel": "M"})
        assert await call16(ws, "s1", "SignCertificate", {"csr": pem}) == \
            [3, "s1", {"status": "Accepted"}]
        kind, unique_id, action, payload = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (kind, action) == (2, "CertificateSigned")
        await ws.send(json.dumps([3, unique_id, {"status": "Accepted"}]))
        # Asked again at once: refused (a charger cannot make strom sign in a loop).
        assert await call16(ws, "s2", "SignCertificate", {"csr": pem}) == \
            [3, "s2", {"status": "Rejected"}]
    await signing.ocpp.charge_points.update("cp-1", security_profile=3)
    async with signing.connect("cp-1", "ocpp1.6",
                               signing.context(payload["certificateChain"], key)) as ws:
        answer = await call16(ws, "b", "BootNotification", {"chargePointVendor": "V",
                                                            "chargePointModel": "M"})
        assert answer[2]["status"] == "Accepted"


async def test_a_charger_known_by_its_id_alone_gets_no_certificate(ocpp: Ocpp,
                                                                     tmp_path: Path) -> None:
    """cp-1 has no password: whoever connects as cp-1 could be anyone."""
    ocpp.central.context.cert_signing = CertificateSigning(
        SigningCa.load(*create_ca(tmp_path)), ocpp.charge_points, ocpp.event_log)
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        assert await call16(ws, "s", "SignCertificate", {"csr": csr_for("cp-1")[0]}) == \
            [3, "s", {"status": "Rejected"}]
    refused = await ocpp.event_log.recent("cp-1")
    assert any("password" in e["payload"].get("reason", "") for e in refused)


async def test_without_a_ca_csrs_are_refused(ocpp: Ocpp) -> None:
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        assert await call16(ws, "s", "SignCertificate", {"csr": csr_for("cp-1")[0]}) == \
            [3, "s", {"status": "Rejected"}]


async def test_without_strom_s_ca_a_csr_is_kept_for_the_operator_only_if_it_is_the_charger_s(
        ocpp: Ocpp, db: Database) -> None:
    """The operator's CA (issue 21's flow) never sees a CSR naming another charger."""
    ocpp.central.context.certificates = CertificateRepository(db)
    async with connect(ocpp.url("cp-1"), subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        assert await call16(ws, "a", "SignCertificate", {"csr": csr_for("cp-2")[0]}) == \
            [3, "a", {"status": "Rejected"}]
        own = csr_for("cp-1")[0]
        assert await call16(ws, "b", "SignCertificate", {"csr": own}) == \
            [3, "b", {"status": "Accepted"}]
    kept = await ocpp.central.context.certificates.list("cp-1")
    assert [request.csr for request in kept] == [own]
