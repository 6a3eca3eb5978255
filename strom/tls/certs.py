"""Certificate files in the data dir and the SSL contexts that serve them.

A `ServerTLS` owns one `ssl.SSLContext` per listener (HTTPS, OCPP). A renewal loads the new
chain into a fresh context and makes it the one new handshakes use (the listener's context
hands each handshake over to the newest through its SNI callback); connections already
established keep the certificate they were opened with, so no charger is dropped.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from strom.security import write_secret_file


def tls_dir(data_dir: Path) -> Path:
    """Where ACME keys and certificates live (0700, files 0600 like the rest of the data dir)."""
    return data_dir / "tls"


@dataclass(frozen=True)
class CertPaths:
    """A PEM chain and its key; `key` None: the key is in the same file (what ACME writes, so
    one rename replaces both and no crash can pair a new chain with an old key)."""

    cert: Path
    key: Path | None = None

    @classmethod
    def acme(cls, data_dir: Path) -> CertPaths:
        return cls(tls_dir(data_dir) / "acme.pem")


def new_private_key_pem() -> bytes:
    """A fresh P-256 key (for the ACME account and for certificates)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def read_or_create_key(path: Path) -> bytes:
    """The PEM key in `path`, created (0600) when missing."""
    if not path.exists():
        write_secret_file(path, new_private_key_pem().decode())
    return path.read_bytes()


@dataclass(frozen=True)
class CertInfo:
    """What strom needs to know about a certificate: when it is valid and for whom."""

    not_before: datetime
    not_after: datetime
    names: tuple[str, ...]
    self_signed: bool  # strom's placeholder (or an operator's own self-signed certificate)

    @classmethod
    def of_pem(cls, pem: bytes) -> CertInfo:
        cert = x509.load_pem_x509_certificate(pem)  # the first one: the leaf
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = tuple(san.value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            names = ()
        return cls(cert.not_valid_before_utc, cert.not_valid_after_utc, names,
                   cert.issuer == cert.subject)

    def renew_at(self, fraction: float) -> datetime:
        """When to renew: after `fraction` of the lifetime."""
        return self.not_before + (self.not_after - self.not_before) * fraction

    def covers(self, domains: list[str]) -> bool:
        return set(domains) <= set(self.names)

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.not_after


def save_combined(path: Path, chain_pem: str, key_pem: bytes) -> None:
    """Replace `path` (0600) with the chain followed by its key, in one rename."""
    staged = path.with_name(path.name + ".new")
    write_secret_file(staged, chain_pem.rstrip("\n") + "\n" + key_pem.decode())
    os.replace(staged, path)


def _context(paths: CertPaths) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths.cert, paths.key)
    return context


class ServerTLS:
    """The SSL context a listener is created with; `reload` swaps the certificate for new
    handshakes only."""

    def __init__(self, paths: CertPaths) -> None:
        self.paths = paths
        self._current = _context(paths)
        self.context = _context(paths)
        self.context.sni_callback = self._newest

    def _newest(self, sock: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        # Called for every ClientHello (also without SNI, as chargers dialling an IP send):
        # the handshake continues with the newest certificate.
        sock.context = self._current

    def reload(self) -> None:
        """Load the files again; raises (and keeps the old certificate) when they are bad."""
        self._current = _context(self.paths)
