"""One connected charger: the OCPP 1.6J handlers for every Core message it may send.

Handlers record facts in the store first and publish events after, so subscribers (sessions,
pages, bots) never see something the store does not have. Handlers never call the charger
(that would wait for an answer the receive loop cannot deliver; see the stack notes): calls go
through `strom.ocpp.control.Ocpp16Control` from other tasks. The OCPP-J session under the
handlers (framing, rate limit, calls and answers) is strom's own: `strom.ocpp.rpc`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp.charge_point import camel_to_snake_case
from ocpp.exceptions import PropertyConstraintViolationError, TypeConstraintViolationError
from ocpp.routing import after, on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    Action,
    DataTransferStatus,
    RegistrationStatus,
)

from strom.events import (
    ChargePointBooted,
    ConnectorStatusChanged,
    EventBus,
    TransactionStarted,
    TransactionStopped,
)
from strom.ocpp.cert_signing import CertificateSigning, CsrRefused, check_csr
from strom.ocpp.meter import MAX_ENERGY_WH, parse_meter_values
from strom.ocpp.metering import MeterBook
from strom.ocpp.readings import Readings
from strom.ocpp.rpc import OcppRpc, Payload, on_payload
from strom.store.certificates import CertificateRepository
from strom.store.charge_points import ChargePointRepository
from strom.store.event_log import EventLogRepository
from strom.store.firmware import FirmwareRepository
from strom.store.transactions import TransactionRepository
from strom.timeutil import iso, parse_iso

log = logging.getLogger(__name__)

REJECTED_INTERVAL = 300  # seconds until a charger the operator rejected may boot again
# How old the handshake's read of the boot mode may be to answer the first boot.
HANDSHAKE_READ_SECONDS = 2.0


class Authorizer(Protocol):
    """Who decides whether an idTag may charge (the session service)."""

    async def authorize(self, cp_id: str, connector_id: int | None, id_tag: str) -> str: ...


@dataclass
class OcppContext:
    """What handlers need; one instance shared by all connections."""

    charge_points: ChargePointRepository
    transactions: TransactionRepository
    event_log: EventLogRepository
    bus: EventBus
    heartbeat_interval: int
    rate_per_second: float
    rate_burst: int
    authorizer: Authorizer | None = None
    meters: MeterBook = field(default_factory=MeterBook)
    # Called (not awaited) once a BootNotification has been answered: the central system then
    # configures the charger from a task of its own.
    on_booted: Callable[[str], None] | None = None
    # Firmware updates and diagnostics requests the status notifications belong to.
    firmware: FirmwareRepository | None = None
    # Chargers' certificate signing requests, for the operator's CA.
    certificates: CertificateRepository | None = None
    # strom's CA for chargers' CSRs (SignCertificate); None: none configured, CSRs refused.
    cert_signing: CertificateSigning | None = None

    async def boot_rejected(self, cp_id: str, vendor: str, model: str, *,
                            known: bool | None = None) -> bool:
        """Whether the operator rejects this charger's boot (`strom cp add --boot rejected`),
        read fresh unless `known` (read a moment ago); a rejected boot is written to the event
        log."""
        rejected = await self.charge_points.boot_rejected(cp_id) if known is None else known
        if not rejected:
            return False
        log.info("%s: BootNotification rejected, as the operator set", cp_id)
        self.event_log.append_soon("boot_rejected", {"vendor": vendor, "model": model}, cp_id)
        return True

    async def booted(self, cp_id: str, vendor: str, model: str, *, serial_number: str | None,
                     firmware: str | None, details: dict[str, Any]) -> None:
        """An accepted boot, whatever OCPP the charger speaks: recorded on the charger, in the
        event log (vendor, model and the version's `details`), then `ChargePointBooted`."""
        # The entry is queued first, so it commits in the batch the boot's record waits for
        # (one batch, not one after the other): both are in when the event goes out.
        self.event_log.append_soon("boot", {"vendor": vendor, "model": model, **details}, cp_id)
        await self.charge_points.record_boot(cp_id, vendor=vendor, model=model,
                                             serial_number=serial_number, firmware=firmware)
        self.bus.publish(ChargePointBooted(cp_id, vendor, model))

    async def sign_requested(self, cp_id: str, csr: str,
                             certificate_type: str | None = None) -> bool:
        """Whether the charger's CSR was signed (its certificate goes out after the answer)."""
        if self.cert_signing is None:
            log.warning("%s: SignCertificate refused: no CA ([ocpp] ca_cert, or strom ocpp ca "
                        "init)", cp_id)
            return False
        return await self.cert_signing.asked(cp_id, csr, certificate_type)

    async def csr_fits(self, cp_id: str, csr: str) -> bool:
        """Whether a CSR kept for the operator's CA is one for this charger (`check_csr`);
        a refused one is logged with the reason."""
        try:
            check_csr(csr, cp_id)
        except CsrRefused as exc:
            log.warning("%s: certificate signing request refused: %s", cp_id, exc)
            await self.event_log.append("csr_refused", {"reason": str(exc)}, cp_id)
            return False
        return True

    def deliver_signed(self, peer: Any, make_call: Callable[[str], Any]
                       ) -> Awaitable[str] | None:
        """The sending of the certificate signed for `peer` (None: none waits), with the
        version's CertificateSigned call made by `make_call` from the PEM chain."""
        issued = self.cert_signing.take(peer.id) if self.cert_signing else None
        if issued is None or self.cert_signing is None:
            return None
        return self.cert_signing.deliver(peer, issued, make_call(issued.chain_pem))


class SharedHandlers(OcppRpc):
    """strom's handlers that read the same in every OCPP version (routed by action name; the
    answer is the version's `call_results` class)."""

    _ctx: OcppContext
    # The operator's boot mode as the handshake read it (loop time of the read, rejected):
    # the first BootNotification comes milliseconds later and is answered from it instead
    # of a read of its own (a store hop per boot); later boots read it fresh.
    handshake_boot: tuple[float, bool] | None = None

    @after("BootNotification")
    def after_boot(self, **_: Any) -> None:
        # The central system then configures the charger's sampling from a task.
        if self.registration == "Accepted" and self._ctx.on_booted is not None:
            self._ctx.on_booted(self.id)

    @on_payload("Heartbeat")
    async def on_heartbeat(self, _: Payload) -> Payload:
        self._ctx.charge_points.touch(self.id)
        return {"currentTime": iso()}

    async def _boot_rejected(self, vendor: str, model: str) -> bool:
        """`OcppContext.boot_rejected`, from the handshake's read for a first boot that came
        within `HANDSHAKE_READ_SECONDS` of it."""
        read, self.handshake_boot = self.handshake_boot, None
        fresh = read is not None \
            and asyncio.get_running_loop().time() - read[0] <= HANDSHAKE_READ_SECONDS
        return await self._ctx.boot_rejected(self.id, vendor, model,
                                             known=read[1] if read is not None and fresh else None)

    async def _authorize(self, connector_id: int | None, id_tag: str) -> str:
        """The session service's word on `id_tag` (Invalid while sessions are not running)."""
        authorizer = self._ctx.authorizer
        if authorizer is None:
            return "Invalid"
        return await authorizer.authorize(self.id, connector_id, id_tag)


class ChargePointConnection(SharedHandlers):
    """One charger speaking OCPP 1.6J: strom's handlers on the OCPP-J session of `OcppRpc`."""

    ocpp_version = "1.6"
    call_results = call_result
    actions = frozenset(action.value for action in Action)
    # The ocpp library and the frame checks name a few errors as OCPP 2.0 does.
    spelling = {"FormatViolation": "FormationViolation",
                "OccurrenceConstraintViolation": "OccurenceConstraintViolation"}
    # The boot, and the metering set-up's calls after it (strom.ocpp.sampling).
    prepared = tuple((kind, action) for action in ("BootNotification", "GetConfiguration",
                                                   "ChangeConfiguration") for kind in (2, 3))

    def __init__(self, cp_id: str, websocket: Any, context: OcppContext,
                 response_timeout: float) -> None:
        super().__init__(cp_id, websocket, response_timeout=response_timeout,
                         rate_per_second=context.rate_per_second, rate_burst=context.rate_burst)
        self._ctx = context
        self._meter_readings = Readings(cp_id, context.meters, context.transactions, context.bus)

    # --- handlers ---------------------------------------------------------------------------

    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str,
                      **kwargs: Any) -> call_result.BootNotification:
        if await self._boot_rejected(charge_point_vendor, charge_point_model):
            self.registration = "Rejected"
            return call_result.BootNotification(current_time=iso(), interval=REJECTED_INTERVAL,
                                                status=RegistrationStatus.rejected)
        self.registration = "Accepted"
        await self._ctx.booted(self.id, charge_point_vendor, charge_point_model,
                               serial_number=kwargs.get("charge_point_serial_number"),
                               firmware=kwargs.get("firmware_version"), details=kwargs)
        return call_result.BootNotification(current_time=iso(),
                                            interval=self._ctx.heartbeat_interval,
                                            status=RegistrationStatus.accepted)

    @on_payload(Action.status_notification)
    async def on_status(self, payload: Payload) -> Payload:
        # On the payload as sent: chargers send one at every change, all day, and every one
        # at each boot (the library's key conversion and payload classes cost more).
        connector_id, status = payload["connectorId"], payload["status"]
        error_code = payload["errorCode"]
        await self._ctx.charge_points.set_connector_status(self.id, connector_id, status,
                                                           error_code)
        if error_code != "NoError" or payload.get("info"):
            details = camel_to_snake_case({k: v for k, v in payload.items()
                                           if k not in ("connectorId", "status", "errorCode")})
            await self._ctx.event_log.append(
                "status", {"connector": connector_id, "status": status,
                           "error_code": error_code, **details}, self.id)
        self._ctx.bus.publish(ConnectorStatusChanged(self.id, connector_id, status, error_code))
        return {}

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str) -> call_result.Authorize:
        status = await self._authorize(None, id_tag)
        return call_result.Authorize(id_tag_info={"status": status})

    @on(Action.start_transaction)
    async def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int,
                                   timestamp: str, reservation_id: int | None = None
                                   ) -> call_result.StartTransaction:
        started_at = charger_timestamp(timestamp)
        if not 0 <= meter_start <= MAX_ENERGY_WH:
            raise PropertyConstraintViolationError(
                description=f"meterStart {meter_start} Wh is not a meter register reading")
        status = await self._authorize(connector_id, id_tag)
        tx, created = await self._ctx.transactions.start(
            self.id, connector_id=connector_id, id_tag=id_tag, meter_start_wh=float(meter_start),
            started_at=started_at, auth_status=status, reservation_id=reservation_id)
        if created:
            self._ctx.meters.started(tx.id, float(meter_start))
            log.info("%s: transaction %d started on connector %d (%s)", self.id, tx.id,
                     connector_id, status)
            self._ctx.bus.publish(TransactionStarted(
                self.id, connector_id, tx.id, id_tag, float(meter_start), parse_iso(started_at)))
        return call_result.StartTransaction(transaction_id=tx.id,
                                            id_tag_info={"status": tx.auth_status})

    @on(Action.stop_transaction)
    async def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int,
                                  reason: str | None = None, id_tag: str | None = None,
                                  transaction_data: list[dict[str, Any]] | None = None
                                  ) -> call_result.StopTransaction:
        stopped_at = charger_timestamp(timestamp)
        known = await self._ctx.transactions.get(transaction_id)
        if known is not None and known.cp_id == self.id and transaction_data:
            # Its readings (Transaction.End) are the most final: billed before the stop.
            await self._meter_readings.apply(known.connector_id, transaction_id,
                                             parse_meter_values(known.connector_id,
                                                                transaction_id, transaction_data))
        stop_wh = float(meter_stop)
        if not 0 <= meter_stop <= MAX_ENERGY_WH:
            last = await self._ctx.meters.energy(transaction_id,
                                                self._meter_readings.history)
            log.warning("%s: StopTransaction %d with meterStop %s Wh: not a register reading;"
                        " the last reading (%s Wh) stands", self.id, transaction_id, meter_stop,
                        last)
            stop_wh = last or 0.0
        self._ctx.meters.forget(transaction_id)
        tx = await self._ctx.transactions.stop(
            self.id, transaction_id, meter_stop_wh=stop_wh, stopped_at=stopped_at,
            reason=reason or "Local", id_tag=id_tag)
        if tx is None:
            # Always acknowledged (OCPP 1.6 §4.10): the charger would resend it forever.
            log.warning("%s: StopTransaction for unknown or already stopped transaction %d",
                        self.id, transaction_id)
        else:
            log.info("%s: transaction %d stopped (%s)", self.id, tx.id, tx.stop_reason)
            self._ctx.bus.publish(TransactionStopped(
                self.id, tx.id, id_tag, stop_wh, tx.stop_reason or "Local",
                parse_iso(stopped_at)))
        if id_tag is None:
            return call_result.StopTransaction()
        return call_result.StopTransaction(id_tag_info={"status": "Accepted"})

    @on_payload(Action.meter_values)
    async def on_meter_values(self, payload: Payload) -> Payload:
        connector_id, transaction_id = payload["connectorId"], payload.get("transactionId")
        await self._meter_readings.apply(connector_id, transaction_id,
                                         parse_meter_values(connector_id, transaction_id,
                                                            payload["meterValue"]))
        return {}

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None,
                               data: str | None = None) -> call_result.DataTransfer:
        await self._ctx.event_log.append(
            "data_transfer", {"vendor_id": vendor_id, "message_id": message_id, "data": data},
            self.id)
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status(self, status: str
                                    ) -> call_result.DiagnosticsStatusNotification:
        await self._upload_status("diagnostics_status", status, None)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.log_status_notification)
    async def on_log_status(self, status: str, request_id: int | None = None
                            ) -> call_result.LogStatusNotification:
        await self._upload_status("log_status", status, request_id)
        return call_result.LogStatusNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, status: str) -> call_result.FirmwareStatusNotification:
        await self._firmware_status("firmware_status", status, None)
        return call_result.FirmwareStatusNotification()

    @on(Action.signed_firmware_status_notification)
    async def on_signed_firmware_status(self, status: str, request_id: int | None = None
                                        ) -> call_result.SignedFirmwareStatusNotification:
        await self._firmware_status("signed_firmware_status", status, request_id)
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.security_event_notification)
    async def on_security_event(self, type: str, timestamp: str,
                                tech_info: str | None = None
                                ) -> call_result.SecurityEventNotification:
        # The schema bounds both texts (50 and 255 characters); the log line names the type
        # only: techInfo is the charger's free text.
        await self._ctx.event_log.append("security_event", {
            "type": type, "timestamp": timestamp, "tech_info": tech_info}, self.id)
        log.warning("%s: security event %s", self.id, type)
        return call_result.SecurityEventNotification()

    @on(Action.sign_certificate)
    async def on_sign_certificate(self, csr: str) -> call_result.SignCertificate:
        if self._ctx.cert_signing is not None:
            # strom's own CA signs it now (`strom.ocpp.cert_signing`); CertificateSigned
            # follows from the hook below.
            signed = await self._ctx.sign_requested(self.id, csr)
            return call_result.SignCertificate(status="Accepted" if signed else "Rejected")
        # Else kept for the operator, who has it signed by their CA (CertificateSigned
        # follows); the schema bounds it (5500 characters), and a CSR naming another charger
        # is refused before it reaches the operator's CA (`check_csr`).
        if self._ctx.certificates is None or not await self._ctx.csr_fits(self.id, csr):
            return call_result.SignCertificate(status="Rejected")
        request_id = await self._ctx.certificates.add(self.id, csr)
        await self._ctx.event_log.append("sign_certificate", {"request_id": request_id},
                                         self.id)
        log.info("%s: certificate signing request %d", self.id, request_id)
        return call_result.SignCertificate(status="Accepted")

    @after(Action.sign_certificate)
    def after_sign_certificate(self, **_: Any) -> Awaitable[str] | None:
        return self._ctx.deliver_signed(
            self, lambda chain: call.CertificateSigned(certificate_chain=chain))

    async def _firmware_status(self, kind: str, status: str, request_id: int | None) -> None:
        update = None
        if self._ctx.firmware is not None:
            update = await self._ctx.firmware.record_firmware_status(
                self.id, status, signed=kind.startswith("signed"), request_id=request_id)
        await self._ctx.event_log.append(kind, _present(
            status=status, request_id=request_id, update_id=update), self.id)

    async def _upload_status(self, kind: str, status: str, request_id: int | None) -> None:
        request = None
        if self._ctx.firmware is not None:
            request = await self._ctx.firmware.record_diagnostics_status(
                self.id, status, log=kind == "log_status", request_id=request_id)
        await self._ctx.event_log.append(kind, _present(
            status=status, request_id=request_id, diagnostics_id=request), self.id)


def _present(**fields: Any) -> dict[str, Any]:
    """An event log payload without the fields that are None."""
    return {key: value for key, value in fields.items() if value is not None}


def charger_timestamp(value: str) -> str:
    """A charger's timestamp as strom stores it (UTC ISO 8601); TypeConstraintViolation for
    one that is no date-time (the charger gets that CALLERROR)."""
    try:
        return iso(parse_iso(value))
    except ValueError:
        raise TypeConstraintViolationError(
            description=f"timestamp {value!r} is not an ISO 8601 date-time") from None
