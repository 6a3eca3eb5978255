"""strom's own CA for chargers' client certificates: SignCertificate → CertificateSigned.

A charger (2.0.1 A02/A03, or 1.6 with the security whitepaper's messages) sends a PKCS#10
certificate signing request; strom signs it with the CA of `[ocpp] ca_cert`/`ca_key` (or the
one `strom ocpp ca init` made in the data dir) and sends the certificate back, and the charger
then connects with security profile 3 using it (the listener trusts this CA beside
`tls_client_ca`).

The request comes from outside and may lie. It is signed only if it is a well-formed PEM CSR
of at most `MAX_CSR_CHARS`, its signature holds (the charger has the private key), its subject
is exactly one common name equal to the id of the connection it came over — a CSR naming
another charger would let one charger log in as another (profile 3 knows chargers by that
name), so it is refused and logged as an attack — and its key is RSA 2048…4096 or EC P-256/
P-384 — and only over a connection that proved who it is (a password, or profile 3's own
certificate): a charger known by its id alone could be anyone. The certificate strom issues
takes nothing else from the request: its subject is the
common name alone, it is good for client authentication only, for `VALID_DAYS`.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ocpp.exceptions import OCPPError
from websockets.exceptions import ConnectionClosed

from strom.errors import UserError
from strom.store.charge_points import ChargePointRepository
from strom.store.event_log import EventLogRepository

log = logging.getLogger(__name__)

MAX_CSR_CHARS = 5500  # OCPP 2.0.1's limit of SignCertificateRequest.csr
RSA_BITS = (2048, 4096)
EC_CURVES = ("secp256r1", "secp384r1")
VALID_DAYS = 365
CA_VALID_DAYS = 3650
CA_CERT_FILE = "ocpp-ca.pem"
CA_KEY_FILE = "ocpp-ca.key"
COOLDOWN = 10.0  # seconds between two CSRs of one charger that strom looks at


class CsrRefused(ValueError):
    """A certificate signing request strom will not sign; the message says why."""


@dataclass(frozen=True)
class Issued:
    """A certificate strom signed: the PEM chain to send and its SHA-256 (DER) for pinning."""

    chain_pem: str
    sha256: str
    serial: int


class SigningCa:
    """A CA certificate and its key, signing chargers' CSRs."""

    def __init__(self, cert: x509.Certificate,
                 key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self._key = key

    @classmethod
    def load(cls, cert_path: str | Path, key_path: str | Path) -> SigningCa:
        """The CA from PEM files; ValueError naming the file when one is no CA or key."""
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path}: an RSA or EC private key is needed")
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise ValueError(f"{key_path} is not the key of {cert_path}")
        return cls(cert, key)

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, csr_pem: str, cp_id: str) -> Issued:
        """Sign `csr_pem` for the charger `cp_id`; CsrRefused saying why not."""
        csr = check_csr(csr_pem, cp_id)
        now = datetime.datetime.now(datetime.UTC)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cp_id)]))
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=True, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        leaf = cert.public_bytes(serialization.Encoding.PEM).decode()
        digest = cert.fingerprint(hashes.SHA256()).hex()
        return Issued(chain_pem=leaf + self.cert_pem, sha256=digest, serial=serial)


def check_csr(csr_pem: str, cp_id: str) -> x509.CertificateSigningRequest:
    """The parsed CSR if strom may sign it for `cp_id`; CsrRefused saying why not."""
    if not isinstance(csr_pem, str) or len(csr_pem) > MAX_CSR_CHARS:
        raise CsrRefused(f"a CSR is a PEM text of at most {MAX_CSR_CHARS} characters")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.strip().encode())
    except ValueError:
        raise CsrRefused("not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise CsrRefused("the CSR's signature does not hold")
    names = [(a.oid, a.value) for a in csr.subject]
    common = [value for oid, value in names if oid == NameOID.COMMON_NAME]
    if common != [cp_id]:
        raise CsrRefused(f"the CSR's common name must be this charger's id {cp_id!r}, "
                         f"not {', '.join(map(str, common)) or 'missing'}")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if not RSA_BITS[0] <= key.key_size <= RSA_BITS[1]:
            raise CsrRefused(f"an RSA key of {key.key_size} bits: use {RSA_BITS[0]} to "
                             f"{RSA_BITS[1]}")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise CsrRefused(f"an EC key on {key.curve.name}: use {' or '.join(EC_CURVES)}")
    else:
        raise CsrRefused("the key must be RSA or EC")
    return csr


def create_ca(directory: Path, name: str = "strom OCPP CA") -> tuple[Path, Path]:
    """Make a CA (EC P-256, 10 years) in `directory`: the certificate and the key (0600).

    Refuses (FileExistsError) to overwrite one: chargers' certificates depend on it.
    """
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if cert_path.exists() or key_path.exists():
        raise FileExistsError(f"{cert_path if cert_path.exists() else key_path} exists")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, secrets.token_hex(8))])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, key_encipherment=False, content_commitment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def load_ca(ca_cert: str, ca_key: str, data_dir: Path | None) -> SigningCa | None:
    """The CA of `[ocpp] ca_cert`/`ca_key`, else the data dir's from `strom ocpp ca init`, else
    None; a UserError naming the key when the files are missing or no CA."""
    if bool(ca_cert) != bool(ca_key):
        raise UserError("[ocpp] ca_cert and ca_key: set both (or neither)")
    if not ca_cert:
        if data_dir is None or not (data_dir / CA_CERT_FILE).exists():
            return None
        ca_cert, ca_key = str(data_dir / CA_CERT_FILE), str(data_dir / CA_KEY_FILE)
    try:
        return SigningCa.load(ca_cert, ca_key)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"[ocpp] ca_cert/ca_key: {exc}") from None


class Peer(Protocol):
    """A connected charger strom can call (`OcppRpc`)."""

    id: str

    async def call(self, payload: Any) -> Any: ...


class CertificateSigning:
    """The signing flow for every connection: look at a CSR, then deliver the certificate.

    A handler answers SignCertificate with `asked` (Accepted: a certificate is waiting), and its
    `@after` hook sends it with `deliver` (a call cannot go out from inside a handler).
    """

    def __init__(self, ca: SigningCa, charge_points: ChargePointRepository,
                 event_log: EventLogRepository) -> None:
        self.ca = ca
        self._charge_points = charge_points
        self._event_log = event_log
        self._waiting: dict[str, Issued] = {}
        self._last: dict[str, float] = {}

    async def asked(self, cp_id: str, csr: str, certificate_type: str | None = None) -> bool:
        """Whether strom signed the charger's CSR (its certificate then waits for `take`)."""
        now = time.monotonic()
        if now - self._last.get(cp_id, -COOLDOWN) < COOLDOWN:
            log.warning("%s: SignCertificate again within %.0f s: refused", cp_id, COOLDOWN)
            return False
        self._last[cp_id] = now
        try:
            cp = await self._charge_points.get(cp_id)
            if cp is None or not (cp.password_hash or (cp.security_profile or 1) >= 3):
                # Anyone who knows its id may connect as it: the certificate would be theirs.
                raise CsrRefused("this charger logs in with its id alone (no password, no "
                                 "certificate): set a password first")
            if certificate_type not in (None, "ChargingStationCertificate"):
                raise CsrRefused(f"strom signs ChargingStationCertificate only, not "
                                 f"{certificate_type}")
            issued = self.ca.sign(csr, cp_id)
        except CsrRefused as exc:
            # A CSR for another charger's id is an attempt to log in as that charger.
            log.warning("%s: certificate signing request refused: %s", cp_id, exc)
            await self._event_log.append("csr_refused", {"reason": str(exc)}, cp_id)
            return False
        self._waiting[cp_id] = issued
        return True

    def take(self, cp_id: str) -> Issued | None:
        """The certificate signed for `cp_id` and not yet sent."""
        return self._waiting.pop(cp_id, None)

    async def deliver(self, peer: Peer, issued: Issued, payload: Any) -> str:
        """Send CertificateSigned (`payload`, the version's call) and record what came of it:
        the charger's status, or why it was not delivered."""
        try:
            status = str((await peer.call(payload)).status)
        except (OCPPError, TimeoutError, ConnectionClosed) as exc:
            status = f"not delivered: {type(exc).__name__}"
        log.info("%s: certificate %x signed, CertificateSigned: %s", peer.id, issued.serial,
                 status)
        await self._event_log.append("certificate_signed", {
            "serial": f"{issued.serial:x}", "sha256": issued.sha256, "status": status}, peer.id)
        if status == "Accepted":
            cp = await self._charge_points.get(peer.id)
            if cp is not None and cp.client_cert_sha256:
                # A pinned charger is pinned to its new certificate: the old one is replaced.
                await self._charge_points.update(peer.id, client_cert_sha256=issued.sha256)
        return status
