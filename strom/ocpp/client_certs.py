"""Security profiles 2 and 3 at the handshake: TLS only, and chargers known by a client
certificate.

With `[ocpp] tls_client_ca` the OCPP listener asks every charger for a client certificate; one
that is presented must chain to that CA or the TLS handshake fails. Presenting none is allowed
(chargers on profiles 1 and 2 share the port) unless `tls_client_required`. A charger set to
profile 3 is then let in only with a certificate whose subject common name is its id (OCPP
security profile 3) and, if a SHA-256 fingerprint is pinned for it, that very certificate.
A profile 2 or 3 charger on a plain `ws://` connection is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from typing import Any

from strom.store.charge_points import ChargerRecord


def require_client_certs(context: ssl.SSLContext, ca_file: str, ca_pem: str | None,
                         required: bool) -> None:
    """Ask chargers for a client certificate signed by the CA in `ca_file` or by strom's own
    signing CA (`ca_pem`, `strom.ocpp.cert_signing`)."""
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL


def refusal(cp: ChargerRecord, transport: Any, client_ca: bool) -> str | None:
    """Why this connection may not serve `cp` under its security profile; None: it may."""
    profile = cp.security_profile or 1
    if profile < 2:
        return None
    tls: ssl.SSLObject | None = transport.get_extra_info("ssl_object") if transport else None
    if tls is None:
        return f"security profile {profile} needs wss://"
    if profile < 3:
        return None
    if not client_ca:
        return "security profile 3 needs [ocpp] tls_client_ca or ca_cert on this server"
    subject = (tls.getpeercert() or {}).get("subject", ())
    names = [pair[1] for rdn in subject if isinstance(rdn, tuple)
             for pair in rdn if pair[0] == "commonName"]
    if cp.id not in names:
        return "security profile 3 needs a client certificate for this charge point"
    if cp.client_cert_sha256:
        der = tls.getpeercert(binary_form=True) or b""
        if not hmac.compare_digest(hashlib.sha256(der).hexdigest(),
                                   cp.client_cert_sha256.lower()):
            return "the client certificate is not the one pinned for this charge point"
    return None
