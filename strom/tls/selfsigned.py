"""A short-lived self-signed placeholder, served until ACME delivers the first certificate
(the listeners need some certificate to start; a renewal replaces it without a restart)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

PLACEHOLDER_DAYS = 7
SIGNING_KEYS = (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey,
                ed448.Ed448PrivateKey, dsa.DSAPrivateKey)


def placeholder_chain(key_pem: bytes, domains: list[str]) -> str:
    """A self-signed certificate for `domains` with the key in `key_pem`."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, SIGNING_KEYS):  # strom makes P-256 keys (strom/tls/certs.py)
        raise ValueError(f"a {type(key).__name__} cannot sign a certificate")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "strom placeholder")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=PLACEHOLDER_DAYS))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(d) for d in domains]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()
