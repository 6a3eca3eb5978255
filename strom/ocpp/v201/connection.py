"""One OCPP 2.0.1 (or 2.1) charger: its messages → the same store rows and bus events as 1.6.

| 2.0.1 message | strom |
| --- | --- |
| BootNotification | `ChargePointBooted` (Accepted); Pending while strom cannot take payments yet |
| StatusNotification (EVSE, connector) | `ConnectorStatusChanged` for connector = EVSE id |
| TransactionEvent Started/Updated/Ended | `TransactionStarted`, `MeterSample`, `TransactionStopped` |
| Authorize | the session service's answer for the idToken |
| MeterValues | rows stored (no transaction: not billed, as in 1.6) |
| NotifyEvent, NotifyReport, SecurityEventNotification, DataTransfer, firmware/log status | event log |

A transaction is bound (stored, `TransactionStarted` published) at the first event that names
its idToken (or a remoteStartId strom sent) and shows a meter reading: the register of the
earliest reading is its meterStart (a charger that meters by intervals or power only starts at
0). Events before that are remembered, not billed: energy before the first reading is never
charged to the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from ocpp import v21
from ocpp.routing import after, on
from ocpp.v21.enums import Action as Action21
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from strom.events import (
    ConnectorStatusChanged,
    TransactionStarted,
    TransactionStopped,
)
from strom.ocpp.charge_point import REJECTED_INTERVAL, SharedHandlers, charger_timestamp
from strom.ocpp.meter import parse_meter_values
from strom.ocpp.metering import first_register
from strom.ocpp.readings import Readings
from strom.ocpp.rpc import Payload, on_payload
from strom.ocpp.v201.state import CHARGING, Unbound, V201Context
from strom.store.transactions import Transaction
from strom.timeutil import iso, parse_iso

log = logging.getLogger(__name__)

PENDING_INTERVAL = 10  # seconds until a charger told Pending boots again
MAX_LOGGED = 4096  # characters of a NotifyEvent/NotifyReport/security event kept


class V201Connection(SharedHandlers):
    """One charger speaking OCPP 2.0.1: strom's handlers on the OCPP-J session of `OcppRpc`
    (boot's after-hook and Heartbeat are `SharedHandlers`')."""

    ocpp_version = "2.0.1"
    call_results = call_result
    actions = frozenset(action.value for action in Action)
    # 2.0.1 §4.3: a frame that is no RPC, and an unknown MessageTypeId, have codes of their own.
    frame_codes = {"type": "MessageTypeNotSupported", "rpc": "RpcFrameworkError"}

    def __init__(self, cp_id: str, websocket: Any, context: V201Context,
                 response_timeout: float) -> None:
        ocpp = context.ocpp
        super().__init__(cp_id, websocket, response_timeout=response_timeout,
                         rate_per_second=ocpp.rate_per_second, rate_burst=ocpp.rate_burst)
        self._v2 = context
        self._ctx = ocpp
        self._meter_readings = Readings(cp_id, ocpp.meters, ocpp.transactions, ocpp.bus)

    # --- provisioning and availability -------------------------------------------------------

    @on(Action.boot_notification)
    async def on_boot(self, charging_station: dict[str, Any], reason: str,
                      **_: Any) -> call_result.BootNotification:
        vendor = str(charging_station.get("vendor_name", ""))
        model = str(charging_station.get("model", ""))
        if await self._ctx.boot_rejected(self.id, vendor, model):
            self.registration = "Rejected"
            return call_result.BootNotification(current_time=iso(), interval=REJECTED_INTERVAL,
                                                status="Rejected")
        if self._ctx.authorizer is None:
            # Sessions are not running yet: nothing could be paid for; the charger asks again.
            self.registration = "Pending"
            return call_result.BootNotification(current_time=iso(), interval=PENDING_INTERVAL,
                                                status="Pending")
        self.registration = "Accepted"
        await self._ctx.booted(self.id, vendor, model,
                               serial_number=charging_station.get("serial_number"),
                               firmware=charging_station.get("firmware_version"),
                               details={"reason": reason})
        return call_result.BootNotification(current_time=iso(),
                                            interval=self._ctx.heartbeat_interval,
                                            status="Accepted")

    @on(Action.status_notification)
    async def on_status(self, timestamp: str, connector_status: str, evse_id: int,
                        connector_id: int, **_: Any) -> call_result.StatusNotification:
        evse = self._v2.evse(self.id, evse_id)
        evse.connectors[connector_id] = connector_status
        if connector_status == "Available" and "Occupied" not in evse.connectors.values():
            evse.ended = False  # unplugged: the EVSE is free again
        if connector_status == "Occupied" and evse.charging is None and any(
                tx.connector_id == evse_id and tx.charger_tx_id is not None
                for tx in await self._ctx.transactions.open_for(self.id)):
            # A transaction strom started before it restarted: the EVSE is not free.
            evse.charging = "Charging"
        await self._publish_status(evse_id)
        return call_result.StatusNotification()

    async def _publish_status(self, evse_id: int) -> None:
        evse = self._v2.evse(self.id, evse_id)
        status = evse.status()
        if status == evse.published:
            return
        evse.published = status
        error = "OtherError" if status == "Faulted" else "NoError"
        await self._ctx.charge_points.set_connector_status(self.id, evse_id, status, error)
        if status == "Faulted":
            await self._ctx.event_log.append(
                "status", {"connector": evse_id, "status": status,
                           "connectors": evse.connectors}, self.id)
        self._ctx.bus.publish(ConnectorStatusChanged(self.id, evse_id, status, error))

    # --- authorization and transactions ----------------------------------------------------

    @on(Action.authorize)
    async def on_authorize(self, id_token: dict[str, Any], **_: Any) -> call_result.Authorize:
        status = await self._authorize(None, str(id_token.get("id_token", "")))
        return call_result.Authorize(id_token_info={"status": status})

    @on_payload(Action.transaction_event)
    async def on_transaction_event(self, payload: Payload) -> Payload:
        # Sent all day while a car charges (one per meter interval): read as sent, camelCase
        # keys, without the library's key conversion (`on_payload`, as 1.6's MeterValues).
        event_type, seq_no = payload["eventType"], payload["seqNo"]
        info: dict[str, Any] = payload["transactionInfo"]
        meter_value: list[dict[str, Any]] | None = payload.get("meterValue")
        id_token: dict[str, Any] | None = payload.get("idToken")
        at = charger_timestamp(payload["timestamp"])
        name = str(info["transactionId"])
        id_tag = str(id_token["idToken"]) if id_token and id_token.get("idToken") else None
        if payload.get("offline", False):
            log.info("%s: TransactionEvent %s %s seqNo %d queued while offline (%s)", self.id,
                     event_type, name, seq_no, at)
        tx = self._v2.open_txs.get((self.id, name)) or await self._open_or_stored(name)
        if tx is None:
            tx = await self._bind(name, event_type, at, seq_no, info, payload.get("evse"),
                                  id_tag, meter_value)
        else:
            self._check_seq_no(tx, seq_no)
            await self._readings(tx, meter_value)
        if tx is not None and (tx.open or event_type == "Ended"):
            # A late event of an ended transaction must not make its EVSE look charging.
            await self._charging_state(tx, event_type, info)
            if event_type == "Ended":
                await self._ended(tx, at, info, id_tag)
        status = await self._authorize(None, id_tag) if id_tag else None
        return {"idTokenInfo": {"status": status}} if status else {}

    async def _open_or_stored(self, name: str) -> Transaction | None:
        """The stored transaction the charger calls `name` (None: not bound yet); an open one
        is remembered for the transaction's next events."""
        tx = await self._ctx.transactions.named(self.id, name)
        if tx is not None and tx.open:
            self._v2.open_txs[(self.id, name)] = tx
        return tx

    async def _bind(self, name: str, event_type: str, at: str, seq_no: int,
                    info: dict[str, Any], evse: dict[str, Any] | None, id_tag: str | None,
                    meter_value: list[dict[str, Any]] | None) -> Transaction | None:
        """Store the transaction once strom knows whose it is and where its meter starts."""
        unbound = self._v2.unbound.get((self.id, name)) or Unbound()
        if evse and isinstance(evse.get("id"), int):
            unbound.evse_id = evse["id"]
        remote = info.get("remoteStartId")
        asked = self._v2.remote_starts.get((self.id, remote)) if isinstance(remote, int) else None
        unbound.id_tag = id_tag or asked or unbound.id_tag
        unbound.started_at = unbound.started_at or at
        connector = unbound.evse_id if unbound.evse_id is not None else 1
        parsed = parse_meter_values(connector, None, meter_value or [])
        if unbound.id_tag is None or (not parsed.rows and event_type != "Ended"):
            self._v2.unbound[(self.id, name)] = unbound
            log.info("%s: transaction %s %s, not billed until %s", self.id, name, event_type,
                     "an idToken" if unbound.id_tag is None else "a meter reading")
            return None
        self._v2.unbound.pop((self.id, name), None)
        start = first_register(parsed.rows)
        meter_start = start if start is not None else 0.0
        status = await self._authorize(connector, unbound.id_tag)
        tx, created = await self._ctx.transactions.start_named(
            self.id, name, connector_id=connector, id_tag=unbound.id_tag,
            meter_start_wh=meter_start, started_at=unbound.started_at, auth_status=status,
            seq_no=seq_no)
        if created:
            self._ctx.meters.started(tx.id, meter_start)
            log.info("%s: transaction %s (strom %d) started on EVSE %d (%s)", self.id, name,
                     tx.id, connector, status)
            self._ctx.bus.publish(TransactionStarted(
                self.id, connector, tx.id, unbound.id_tag, meter_start,
                parse_iso(unbound.started_at)))
        if tx.open:
            self._v2.open_txs[(self.id, name)] = tx
        await self._readings(tx, meter_value)
        return tx

    def _check_seq_no(self, tx: Transaction, seq_no: int) -> None:
        """Log gaps and repeats (the events are applied anyway: readings count once)."""
        last = self._v2.seq_nos.get(tx.id, tx.seq_no)
        if last is not None and seq_no != last + 1:
            what = "repeated" if seq_no <= last else f"after {last}: {seq_no - last - 1} missing"
            log.warning("%s: transaction %s seqNo %d %s", self.id, tx.charger_tx_id, seq_no,
                        what)
        self._v2.seq_nos[tx.id] = max(seq_no, last or 0)
        self._ctx.transactions.note_seq_no(tx.id, self._v2.seq_nos[tx.id])

    async def _readings(self, tx: Transaction, meter_value: list[dict[str, Any]] | None) -> None:
        parsed = parse_meter_values(tx.connector_id, tx.id, meter_value or [])
        if parsed.signed_values:
            # Kept as the charger sent them.
            self._ctx.event_log.append_soon("signed_meter_values", {
                "transaction_id": tx.id, "values": parsed.signed_values}, self.id)
        await self._meter_readings.apply(tx.connector_id, tx.id, parsed)

    async def _charging_state(self, tx: Transaction, event_type: str,
                              info: dict[str, Any]) -> None:
        evse = self._v2.evse(self.id, tx.connector_id)
        if event_type == "Ended":
            evse.charging = None
            evse.ended = "Occupied" in evse.connectors.values()
        else:
            evse.charging = CHARGING.get(str(info.get("chargingState")),
                                         evse.charging or "Charging")
        await self._publish_status(tx.connector_id)

    async def _ended(self, tx: Transaction, at: str, info: dict[str, Any],
                     id_tag: str | None) -> None:
        meter_stop = await self._ctx.meters.energy(tx.id, self._meter_readings.history)
        meter_stop = tx.meter_start_wh if meter_stop is None else meter_stop
        self._ctx.meters.forget(tx.id)
        self._v2.open_txs.pop((self.id, str(tx.charger_tx_id)), None)
        reason = str(info.get("stoppedReason") or "Local")
        stopped = await self._ctx.transactions.stop(
            self.id, tx.id, meter_stop_wh=meter_stop, stopped_at=at, reason=reason,
            id_tag=id_tag)
        if stopped is None:
            log.warning("%s: TransactionEvent Ended for already stopped transaction %s",
                        self.id, tx.charger_tx_id)
            return
        log.info("%s: transaction %s (strom %d) ended (%s)", self.id, tx.charger_tx_id, tx.id,
                 reason)
        self._ctx.bus.publish(TransactionStopped(self.id, tx.id, id_tag, meter_stop, reason,
                                                 parse_iso(at)))

    @on_payload(Action.meter_values)
    async def on_meter_values(self, payload: Payload) -> Payload:
        # 2.0.1 MeterValues belong to no transaction (those go in TransactionEvents).
        evse_id = payload["evseId"]
        await self._meter_readings.apply(evse_id, None,
                                         parse_meter_values(evse_id, None, payload["meterValue"]))
        return {}

    # --- reports, kept in the event log ----------------------------------------------------

    async def _keep(self, kind: str, payload: dict[str, Any]) -> None:
        text = repr(payload)
        await self._ctx.event_log.append(
            kind, payload if len(text) <= MAX_LOGGED else {"cut": text[:MAX_LOGGED]}, self.id)

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> call_result.DataTransfer:
        await self._keep("data_transfer", {"vendor_id": vendor_id, **kwargs})
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.security_event_notification)
    async def on_security_event(self, type: str, timestamp: str,
                                **kwargs: Any) -> call_result.SecurityEventNotification:
        log.warning("%s: security event %s at %s", self.id, type, timestamp)
        await self._keep("security_event", {"type": type, "timestamp": timestamp, **kwargs})
        return call_result.SecurityEventNotification()

    @on(Action.notify_event)
    async def on_notify_event(self, **kwargs: Any) -> call_result.NotifyEvent:
        await self._keep("notify_event", kwargs)
        return call_result.NotifyEvent()

    @on(Action.notify_report)
    async def on_notify_report(self, **kwargs: Any) -> call_result.NotifyReport:
        await self._keep("notify_report", kwargs)
        return call_result.NotifyReport()

    @on(Action.sign_certificate)
    async def on_sign_certificate(self, csr: str, certificate_type: str | None = None,
                                  **_: Any) -> call_result.SignCertificate:
        # A02/A03: strom's CA signs a CSR for this charger's id (`strom.ocpp.cert_signing`).
        signed = await self._ctx.sign_requested(self.id, csr, certificate_type)
        return call_result.SignCertificate(
            status="Accepted" if signed else "Rejected",
            status_info=None if signed else {"reason_code": "InvalidCSR"})

    @after(Action.sign_certificate)
    def after_sign_certificate(self, certificate_type: str | None = None,
                               **_: Any) -> Awaitable[str] | None:
        return self._ctx.deliver_signed(self, lambda chain: call.CertificateSigned(
            certificate_chain=chain, certificate_type=certificate_type))

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, status: str,
                                 **_: Any) -> call_result.FirmwareStatusNotification:
        await self._ctx.event_log.append("firmware_status", {"status": status}, self.id)
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    async def on_log_status(self, status: str, **_: Any) -> call_result.LogStatusNotification:
        await self._ctx.event_log.append("log_status", {"status": status}, self.id)
        return call_result.LogStatusNotification()


class V21Connection(V201Connection):
    """OCPP 2.1: the same handlers, checked against the 2.1 schemas (its core messages are
    2.0.1's with optional fields added)."""

    ocpp_version = "2.1"
    call_results = v21.call_result
    actions = frozenset(action.value for action in Action21)
