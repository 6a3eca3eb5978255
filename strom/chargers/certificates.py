"""Chargers' own certificates (1.6 security extensions): a charger sends a certificate signing
request (SignCertificate, or when asked with ExtendedTriggerMessage SignChargePointCertificate);
the operator has it signed by their CA and hands strom the chain, which goes to the charger
(CertificateSigned). strom is no CA: it checks that the chain is PEM certificates whose first
one carries the key of the charger's request, so a chain for another key never reaches it.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from strom.chargers.control import ChargerControl, ControlResult
from strom.chargers.operator import CommandRefused, OperatorCommands
from strom.store.certificates import CertificateRepository, CertificateRequest
from strom.store.charge_points import ChargePointRepository
from strom.store.db import Database
from strom.store.event_log import EventLogRepository

MAX_CHAIN_CERTIFICATES = 10


class CertificateService:
    """The operator's side of the chargers' certificate signing requests."""

    def __init__(self, repo: CertificateRepository, charge_points: ChargePointRepository,
                 chargers: ChargerControl, audit: EventLogRepository) -> None:
        self.repository = repo  # the OCPP handlers record the requests in it
        self._commands = OperatorCommands(charge_points, chargers, audit)

    async def requests(self, cp_id: str | None = None,
                       limit: int = 50) -> list[CertificateRequest]:
        return await self.repository.list(cp_id, limit)

    async def send_signed(self, request_id: int, chain: str, *,
                          by: str) -> tuple[CertificateRequest, ControlResult]:
        """Send the chain signed for a pending request to its charger; the request as stored
        after the charger's answer, and the answer."""
        request = await self.repository.get(request_id)
        if request is None:
            raise CommandRefused(f"no certificate request {request_id}", "request_id")
        if request.status != "Pending":
            raise CommandRefused(f"certificate request {request_id} is {request.status},"
                                 " not pending", "request_id")
        check_chain(request.csr, chain)
        result = await self._commands.send_certificate(request.cp_id, request_id, chain, by=by)
        if result.answered:
            await self.repository.answered(
                request_id, status=result.status or result.outcome.value,
                chain=chain if result.ok else None, reason=result.reason or None)
        stored = await self.repository.get(request_id)
        assert stored is not None
        return stored, result


def certificate_service(db: Database, charge_points: ChargePointRepository,
                        chargers: ChargerControl, audit: EventLogRepository
                        ) -> CertificateService:
    """The service of a running strom."""
    return CertificateService(CertificateRepository(db), charge_points, chargers, audit)


def check_chain(csr_pem: str, chain_pem: str) -> None:
    """`CommandRefused` unless `chain_pem` is 1 … 10 PEM certificates, the first for the
    CSR's key."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        raise CommandRefused("the certificate chain is not PEM certificates",
                             "certificate_chain") from None
    if not 1 <= len(chain) <= MAX_CHAIN_CERTIFICATES:
        raise CommandRefused(f"a chain has 1 … {MAX_CHAIN_CERTIFICATES} certificates",
                             "certificate_chain")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise CommandRefused("the charger's request is no PEM CSR; ask it for a new one",
                             "request_id") from None

    def key(item: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
        return item.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    if key(chain[0]) != key(csr):
        raise CommandRefused("the first certificate is not for the key of the charger's"
                             " request", "certificate_chain")
