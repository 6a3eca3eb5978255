"""The OCPP 2.0.1 (and 2.1) adapter of `strom.chargers.control.ChargerControl`.

The call and its failures are the 1.6 adapter's (`Ocpp16Control`: not connected, no answer in
time, a CALLERROR — a result, never an exception); the operations are 2.0.1 messages:
strom's connector n is the charger's EVSE n, strom's transaction ids are its own integers and
the charger's string names are looked up in the store. The 1.6 configuration keys
`sampling.py` reads and sets live in the device model (`protocols.DEVICE_MODEL`):
GetVariables and SetVariables stand in for GetConfiguration and ChangeConfiguration.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from ocpp.v201 import call

from strom.chargers.control import (
    ConfigurationResult,
    ControlResult,
    FirmwareRequest,
    ListEntry,
    LocalListSettings,
    LocalListVersion,
    Outcome,
    StillWanted,
    Trigger,
    UploadRequest,
    UploadResult,
)
from strom.ocpp.control import (
    PHASE_VOLTS,
    PROFILE_ID,
    RATE_UNIT_KEY,
    CallFailed,
    Ocpp16Control,
)
from strom.ocpp.protocols import DEVICE_MODEL, OCPP201
from strom.ocpp.v201.state import V201Context
from strom.store.transactions import TransactionRepository
from strom.timeutil import iso, utcnow

# The status words of 2.0.1's answers.
OUTCOMES = {
    "Accepted": Outcome.ACCEPTED, "Unlocked": Outcome.ACCEPTED,
    "Scheduled": Outcome.SCHEDULED, "RebootRequired": Outcome.SCHEDULED,
    "Rejected": Outcome.REJECTED, "UnlockFailed": Outcome.REJECTED,
    "OngoingAuthorizedTransaction": Outcome.REJECTED,
    "UnknownConnector": Outcome.NOT_SUPPORTED, "NotImplemented": Outcome.NOT_SUPPORTED,
    "UnknownComponent": Outcome.NOT_SUPPORTED, "UnknownVariable": Outcome.NOT_SUPPORTED,
    "NotSupportedAttributeType": Outcome.NOT_SUPPORTED,
}
# Trigger names of the admin API (1.6's) that 2.0.1 calls otherwise.
_TRIGGERS = {Trigger.DIAGNOSTICS_STATUS: "LogStatusNotification"}

_NO_FIRMWARE = ControlResult(
    Outcome.NOT_SUPPORTED, reason="firmware, logs and certificates over OCPP 2.0.1 are not"
    " supported by strom yet; nothing was sent")
_NO_LOCAL_LIST = ControlResult(Outcome.NOT_SUPPORTED,
                               reason="local lists over OCPP 2.0.1 are not supported by strom yet")


class Ocpp201Control(Ocpp16Control):
    """Charger control over OCPP 2.0.1 (or 2.1, `protocol`) for one central system's chargers."""

    def __init__(self, connection: Callable[[str], Any], call_timeout: float,
                 context: V201Context, transactions: TransactionRepository, *,
                 protocol: str = OCPP201) -> None:
        super().__init__(connection, call_timeout)
        self.protocol = protocol
        self._v2 = context
        self._transactions = transactions

    async def start(self, cp_id: str, connector_id: int, id_tag: str, *,
                    still_wanted: StillWanted | None = None) -> ControlResult:
        """RequestStartTransaction on EVSE `connector_id` for `id_tag` (unless
        `still_wanted`, asked at its turn, says no)."""
        remote_start_id = secrets.randbelow(2**31 - 1) + 1
        # Remembered first: the charger may send its TransactionEvent before it answers.
        self._v2.remote_starts[(cp_id, remote_start_id)] = id_tag
        return await self._ask(cp_id, call.RequestStartTransaction(
            id_token={"idToken": id_tag, "type": "Central"}, remote_start_id=remote_start_id,
            evse_id=connector_id), OUTCOMES, still_wanted)

    async def stop(self, cp_id: str, transaction_id: int) -> ControlResult:
        """RequestStopTransaction of strom's transaction `transaction_id`."""
        tx = await self._transactions.get(transaction_id)
        if tx is None or tx.cp_id != cp_id or tx.charger_tx_id is None:
            return ControlResult(Outcome.REJECTED, reason=f"transaction {transaction_id} is no"
                                 f" OCPP 2.0.1 transaction of charge point {cp_id}")
        return await self._ask(cp_id, call.RequestStopTransaction(
            transaction_id=tx.charger_tx_id), OUTCOMES)

    async def unlock(self, cp_id: str, connector_id: int) -> ControlResult:
        return await self._ask(cp_id, call.UnlockConnector(evse_id=connector_id,
                                                           connector_id=1), OUTCOMES)

    async def set_availability(self, cp_id: str, connector_id: int,
                               operative: bool) -> ControlResult:
        """ChangeAvailability of EVSE `connector_id`; 0 is the whole charger."""
        return await self._ask(cp_id, call.ChangeAvailability(
            operational_status="Operative" if operative else "Inoperative",
            evse={"id": connector_id} if connector_id else None), OUTCOMES)

    async def set_power_limit(self, cp_id: str, connector_id: int,
                              watts: float | None) -> ControlResult:
        """SetChargingProfile as for 1.6 (`Ocpp16Control.set_power_limit`): on EVSE 0 a
        ChargingStationMaxProfile, else a TxDefaultProfile of that EVSE, strom's own profile
        id per EVSE, Absolute from a minute ago; in W unless the charger's
        SmartChargingCtrlr.RateUnit has only A. None: ClearChargingProfile of that id."""
        profile_id = PROFILE_ID + connector_id
        if watts is None:
            return await self._ask(cp_id, call.ClearChargingProfile(
                charging_profile_id=profile_id), {**OUTCOMES, "Unknown": Outcome.ACCEPTED})
        if await self._amps_only(cp_id):
            unit, limit = "A", math.floor(watts / (PHASE_VOLTS * 3) * 10) / 10
        else:
            unit, limit = "W", round(float(watts), 1)
        purpose = "ChargingStationMaxProfile" if connector_id == 0 else "TxDefaultProfile"
        return await self._ask(cp_id, call.SetChargingProfile(evse_id=connector_id, charging_profile={
            "id": profile_id, "stackLevel": 0, "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute", "chargingSchedule": [{
                "id": profile_id, "chargingRateUnit": unit,
                "startSchedule": iso(utcnow() - timedelta(minutes=1)),
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit,
                                            **({"numberPhases": 3} if unit == "A" else {})}]}]}),
            OUTCOMES)

    async def _amps_only(self, cp_id: str) -> bool:
        config = await self.get_configuration(cp_id, [RATE_UNIT_KEY])
        units = {unit.strip().upper()
                 for unit in (config.values.get(RATE_UNIT_KEY) or "").split(",")}
        return "A" in units and "W" not in units

    async def reset(self, cp_id: str, *, hard: bool = False) -> ControlResult:
        """Immediate (hard) or once idle (soft; Scheduled while a transaction runs)."""
        return await self._ask(cp_id, call.Reset(type="Immediate" if hard else "OnIdle"),
                               OUTCOMES)

    async def trigger(self, cp_id: str, message: Trigger,
                      connector_id: int | None = None) -> ControlResult:
        """A reading of a running transaction comes as a TransactionEvent (2.0.1 MeterValues
        belong to no transaction); a StatusNotification names the EVSE's connector 1."""
        requested = _TRIGGERS.get(Trigger(message), Trigger(message).value)
        evse: dict[str, int] | None = {"id": connector_id} if connector_id else None
        if message == Trigger.METER_VALUES and connector_id and any(
                tx.connector_id == connector_id and tx.charger_tx_id is not None
                for tx in await self._transactions.open_for(cp_id)):
            requested = "TransactionEvent"
        if evse is not None and message == Trigger.STATUS:
            evse["connectorId"] = 1
        return await self._ask(cp_id, call.TriggerMessage(requested_message=requested,
                                                          evse=evse), OUTCOMES)

    async def get_configuration(self, cp_id: str,
                                keys: list[str] | None = None) -> ConfigurationResult:
        """The device model's values of the 1.6 keys it has (`DEVICE_MODEL`); the rest
        unknown."""
        wanted = list(keys or DEVICE_MODEL)
        mapped = [key for key in wanted if key in DEVICE_MODEL]
        unknown = [key for key in wanted if key not in DEVICE_MODEL]
        values: dict[str, str | None] = {}
        if mapped:
            try:
                answer = await self._call(cp_id, call.GetVariables(get_variable_data=[
                    {"component": {"name": DEVICE_MODEL[key][0]},
                     "variable": {"name": DEVICE_MODEL[key][1]}} for key in mapped]))
            except CallFailed as failed:
                return ConfigurationResult(failed.result)
            found = {(r["component"]["name"], r["variable"]["name"]): r
                     for r in answer.get_variable_result}
            for key in mapped:
                result = found.get(DEVICE_MODEL[key])
                if result is not None and result.get("attribute_status") == "Accepted":
                    values[key] = result.get("attribute_value")
                else:
                    unknown.append(key)
        return ConfigurationResult(ControlResult(Outcome.ACCEPTED, "Accepted"), values=values,
                                   unknown=tuple(unknown))

    async def change_configuration(self, cp_id: str, key: str, value: str) -> ControlResult:
        """SetVariables of the key's device model variable."""
        if key not in DEVICE_MODEL:
            return ControlResult(Outcome.NOT_SUPPORTED, "NotSupported",
                                 f"{key} has no OCPP 2.0.1 device model variable here")
        component, variable = DEVICE_MODEL[key]
        try:
            answer = await self._call(cp_id, call.SetVariables(set_variable_data=[{
                "attributeValue": value, "component": {"name": component},
                "variable": {"name": variable}}]))
        except CallFailed as failed:
            return failed.result
        results = answer.set_variable_result
        status = str(results[0].get("attribute_status")) if results else "Rejected"
        outcome = OUTCOMES.get(status, Outcome.REJECTED)
        reason = "" if outcome in (Outcome.ACCEPTED, Outcome.SCHEDULED) else \
            f"charge point {cp_id} answered {status} to SetVariables {component}.{variable}"
        return ControlResult(outcome, status, reason)

    # 2.0.1's local list (SendLocalList with idTokens, GetLocalListVersion, ClearCache) has
    # other shapes than 1.6's; until it is mapped, owner cards are accepted online only and the
    # charger is reported as keeping no list (never sent 1.6 frames).
    async def local_list_settings(self, cp_id: str) -> LocalListSettings:
        return LocalListSettings(_NO_LOCAL_LIST)

    async def enable_local_list(self, cp_id: str) -> ControlResult:
        return _NO_LOCAL_LIST

    async def local_list_version(self, cp_id: str) -> LocalListVersion:
        return LocalListVersion(_NO_LOCAL_LIST)

    async def send_local_list(self, cp_id: str, version: int, entries: Sequence[ListEntry], *,
                              full: bool) -> ControlResult:
        return _NO_LOCAL_LIST

    async def clear_cache(self, cp_id: str) -> ControlResult:
        return _NO_LOCAL_LIST

    # 2.0.1's UpdateFirmware, GetLog and CertificateSigned differ from the 1.6 security
    # extensions' in their fields; until they are mapped, nothing is sent (never 1.6 frames).
    async def update_firmware(self, cp_id: str, request: FirmwareRequest) -> ControlResult:
        return _NO_FIRMWARE

    async def request_upload(self, cp_id: str, request: UploadRequest) -> UploadResult:
        return UploadResult(_NO_FIRMWARE)

    async def send_certificate(self, cp_id: str, chain: str) -> ControlResult:
        return _NO_FIRMWARE

    async def reserve_now(self, cp_id: str, connector_id: int, *, expiry: datetime,
                          id_tag: str, reservation_id: int) -> ControlResult:
        """ReserveNow of EVSE n for the session's token (type Central, as strom's starts)."""
        return await self._ask(cp_id, call.ReserveNow(
            id=reservation_id, expiry_date_time=iso(expiry),
            id_token={"id_token": id_tag, "type": "Central"}, evse_id=connector_id), OUTCOMES)

    async def cancel_reservation(self, cp_id: str, reservation_id: int) -> ControlResult:
        return await self._ask(cp_id, call.CancelReservation(reservation_id=reservation_id),
                               OUTCOMES)

    async def reservations_supported(self, cp_id: str) -> ControlResult:
        # ReservationCtrlr (Available, Enabled) is not read yet: drivers are offered
        # reservations at 1.6 chargers only, though ReserveNow itself is mapped above.
        return ControlResult(Outcome.NOT_SUPPORTED, reason="reservations over OCPP 2.0.1 are "
                             "not offered by strom yet")
