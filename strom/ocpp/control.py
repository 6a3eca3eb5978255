"""The OCPP 1.6J adapter of `strom.chargers.control.ChargerControl`.

Each operation is one call to the charger through its `ChargePointConnection` (which bounds
the wait for the answer); the answer's status word becomes an `Outcome`, and a charger that is not connected,
does not answer in time or answers CALLERROR gives a result saying so, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError, ValidationError
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed

from strom.chargers.control import (
    ConfigurationResult,
    ControlResult,
    FirmwareRequest,
    ListEntry,
    LocalListSettings,
    LocalListVersion,
    Outcome,
    PowerReading,
    StillWanted,
    Trigger,
    UploadRequest,
    UploadResult,
    not_connected,
)
from strom.ocpp.charge_point import ChargePointConnection
from strom.ocpp.local_list import KEYS as LIST_KEYS
from strom.ocpp.local_list import list_entry, list_settings
from strom.ocpp.profiles import PROFILES_KEY, lacks
from strom.ocpp.rpc import CallWithdrawn, Payload
from strom.timeutil import iso, utcnow

PROTOCOL = "ocpp1.6"

# The status words of OCPP 1.6's answers; none means two things in two answers.
_OUTCOMES = {
    "Accepted": Outcome.ACCEPTED, "Unlocked": Outcome.ACCEPTED,
    "Scheduled": Outcome.SCHEDULED, "RebootRequired": Outcome.SCHEDULED,
    "Rejected": Outcome.REJECTED, "UnlockFailed": Outcome.REJECTED,
    "NotSupported": Outcome.NOT_SUPPORTED, "NotImplemented": Outcome.NOT_SUPPORTED,
}
# ClearChargingProfile answers Unknown when strom had set no limit: then none is in force.
_CLEARED = {**_OUTCOMES, "Unknown": Outcome.ACCEPTED}
# SignedUpdateFirmware and GetLog answer AcceptedCanceled when they replace a running request.
_REPLACED = {**_OUTCOMES, "AcceptedCanceled": Outcome.ACCEPTED}
# Triggers only the security extensions' ExtendedTriggerMessage knows.
_EXTENDED_TRIGGERS = frozenset({Trigger.LOG_STATUS, Trigger.SIGN_CERTIFICATE})
FIRMWARE_PROFILE = "FirmwareManagement"
# CALLERROR codes that mean "this charger does not have that operation".
_UNSUPPORTED_CODES = frozenset({"NotImplemented", "NotSupported"})
# strom's charging profiles: id 8400 + connector, so a new limit replaces strom's last one on
# that connector and clearing it leaves the operator's own profiles alone.
PROFILE_ID = 8400
RATE_UNIT_KEY = "ChargingScheduleAllowedChargingRateUnit"
PHASE_VOLTS = 230


class CallFailed(Exception):
    """A call got no usable answer; `result` says why. Raised by `Ocpp16Control._call`, which
    the 2.0.1 adapter inherits, so both adapters catch it."""

    def __init__(self, result: ControlResult) -> None:
        super().__init__(result.reason)
        self.result = result


class Ocpp16Control:
    """Charger control over OCPP 1.6J for the chargers connected to one central system."""

    protocol = PROTOCOL

    def __init__(self, connection: Callable[[str], ChargePointConnection | None],
                 call_timeout: float) -> None:
        self._connection = connection
        self._call_timeout = call_timeout  # the connections' own, named in a TIMEOUT's reason

    def is_connected(self, cp_id: str) -> bool:
        return self._connection(cp_id) is not None

    async def _call(self, cp_id: str, payload: Any, still_wanted: StillWanted | None = None
                    ) -> Any:
        """Send one call (unless `still_wanted`, asked at its turn, says no); the ocpp
        library's typed answer, or `CallFailed`."""
        return await self._calling(cp_id, type(payload).__name__,
                                   lambda conn: conn.call(payload, still_wanted=still_wanted))

    async def _call_payload(self, cp_id: str, action: str, payload: Payload) -> Payload:
        """`_call` on the payloads as on the wire (`OcppRpc.call_payload`)."""
        return await self._calling(cp_id, action,
                                   lambda conn: conn.call_payload(action, payload))

    async def _calling(self, cp_id: str, action: str,
                       send: Callable[[Any], Awaitable[Any]]) -> Any:
        conn = self._connection(cp_id)
        if conn is None:
            raise CallFailed(not_connected(cp_id))
        try:
            # The connection bounds the wait for the answer (not for its turn: OCPP-J sends
            # one call at a time, so a call may first wait for the one before it).
            return await send(conn)
        except CallWithdrawn:
            raise CallFailed(ControlResult(
                Outcome.NOT_SENT, reason=f"{action} to charge point {cp_id} was no longer"
                " wanted when its turn came; nothing was sent")) from None
        except TimeoutError:
            raise CallFailed(ControlResult(
                Outcome.TIMEOUT, reason=f"charge point {cp_id} did not answer {action} within"
                f" {self._call_timeout:g} s")) from None
        except ConnectionClosed:
            raise CallFailed(not_connected(cp_id)) from None
        except OCPPError as exc:
            code = str(getattr(exc, "code", type(exc).__name__))
            raise CallFailed(_refused(cp_id, action, code, exc.description or "")) from None
        except (UnknownCallErrorCodeError, ValidationError) as exc:
            raise CallFailed(ControlResult(
                Outcome.ERROR, reason=f"charge point {cp_id} answered {action} wrongly: {exc}",
                code="InvalidResponse")) from None

    async def _ask(self, cp_id: str, payload: Any, outcomes: dict[str, Outcome] = _OUTCOMES,
                   still_wanted: StillWanted | None = None) -> ControlResult:
        try:
            answer = await self._call(cp_id, payload, still_wanted)
        except CallFailed as failed:
            return failed.result
        return self._outcome(cp_id, type(payload).__name__, str(answer.status), outcomes)

    @staticmethod
    def _outcome(cp_id: str, action: str, status: str,
                 outcomes: dict[str, Outcome] = _OUTCOMES) -> ControlResult:
        outcome = outcomes.get(status, Outcome.REJECTED)
        reason = "" if outcome in (Outcome.ACCEPTED, Outcome.SCHEDULED) else \
            f"charge point {cp_id} answered {status} to {action}"
        return ControlResult(outcome, status, reason)

    async def start(self, cp_id: str, connector_id: int, id_tag: str, *,
                    still_wanted: StillWanted | None = None) -> ControlResult:
        return await self._ask(cp_id, call.RemoteStartTransaction(
            id_tag=id_tag, connector_id=connector_id), still_wanted=still_wanted)

    async def stop(self, cp_id: str, transaction_id: int) -> ControlResult:
        return await self._ask(cp_id, call.RemoteStopTransaction(transaction_id=transaction_id))

    async def unlock(self, cp_id: str, connector_id: int) -> ControlResult:
        return await self._ask(cp_id, call.UnlockConnector(connector_id=connector_id))

    async def set_availability(self, cp_id: str, connector_id: int,
                               operative: bool) -> ControlResult:
        return await self._ask(cp_id, call.ChangeAvailability(
            connector_id=connector_id, type="Operative" if operative else "Inoperative"))

    async def set_power_limit(self, cp_id: str, connector_id: int,
                              watts: float | None) -> ControlResult:
        """SetChargingProfile: on connector 0 a ChargePointMaxProfile (the whole charger), else
        a TxDefaultProfile of that connector, one profile id per connector (a new limit
        replaces strom's last one there, and only it). None: ClearChargingProfile of that id.

        Absolute from a minute ago (a charger's clock may be behind), with no end: chargers
        refuse a Relative ChargePointMaxProfile ("chargingProfileKind SHALL NOT be Relative",
        https://github.com/lbbrhzn/ocpp/issues/1565). In W unless the charger takes only amps
        (`ChargingScheduleAllowedChargingRateUnit` = `Current`): then per phase, for three
        phases at 230 V, which for a one-phase charger caps lower, never higher. A charger
        whose `SupportedFeatureProfiles` lacks SmartCharging is not asked: NOT_SUPPORTED."""
        profile_id = PROFILE_ID + connector_id
        if watts is None:
            return await self._ask(cp_id, call.ClearChargingProfile(id=profile_id), _CLEARED)
        # One GetConfiguration for both: the units it takes, and whether it has the profile.
        config = await self.get_configuration(cp_id, [RATE_UNIT_KEY, PROFILES_KEY])
        if (listed := lacks(config.values, "SmartCharging")) is not None:
            return ControlResult(Outcome.NOT_SUPPORTED, reason=(
                f"charge point {cp_id} does not support SmartCharging ({PROFILES_KEY}:"
                f" {listed}); nothing was sent"))
        settings = {key.lower(): value or "" for key, value in config.values.items()}
        units = {unit.strip().lower()
                 for unit in settings.get(RATE_UNIT_KEY.lower(), "").split(",")}
        if "current" in units and "power" not in units:
            unit, limit = "A", math.floor(watts / (PHASE_VOLTS * 3) * 10) / 10
        else:
            unit, limit = "W", round(float(watts), 1)
        purpose = "ChargePointMaxProfile" if connector_id == 0 else "TxDefaultProfile"
        return await self._ask(cp_id, call.SetChargingProfile(
            connector_id=connector_id, cs_charging_profiles={
                "charging_profile_id": profile_id, "stack_level": 0,
                "charging_profile_purpose": purpose, "charging_profile_kind": "Absolute",
                "charging_schedule": {
                    "charging_rate_unit": unit,
                    "start_schedule": iso(utcnow() - timedelta(minutes=1)),
                    "charging_schedule_period": [{"start_period": 0, "limit": limit,
                                                  **({"number_phases": 3} if unit == "A"
                                                     else {})}]}}))

    async def read_power_limit(self, cp_id: str, connector_id: int) -> PowerReading:
        """GetCompositeSchedule for the next minute, in W: the first period's limit (amps
        become W for the periods' phases, three when it does not say, at 230 V)."""
        try:
            answer = await self._call(cp_id, call.GetCompositeSchedule(
                connector_id=connector_id, duration=60, charging_rate_unit="W"))
        except CallFailed as failed:
            return PowerReading(failed.result)
        status = str(answer.status)
        if status != "Accepted":
            return PowerReading(ControlResult(_OUTCOMES.get(status, Outcome.REJECTED), status,
                                              f"charge point {cp_id} answered {status} to"
                                              " GetCompositeSchedule"))
        accepted = ControlResult(Outcome.ACCEPTED, status)
        schedule = answer.charging_schedule or {}
        periods = schedule.get("charging_schedule_period") or []
        if not periods:
            return PowerReading(accepted)
        try:
            limit = float(periods[0]["limit"])
            if str(schedule.get("charging_rate_unit", "W")) == "A":
                limit *= PHASE_VOLTS * int(periods[0].get("number_phases") or 3)
        except (KeyError, TypeError, ValueError):
            return PowerReading(ControlResult(
                Outcome.ERROR, status, f"charge point {cp_id} answered GetCompositeSchedule"
                " with a schedule that does not fit", "InvalidResponse"))
        return PowerReading(accepted, limit if math.isfinite(limit) else None)

    async def reset(self, cp_id: str, *, hard: bool = False) -> ControlResult:
        return await self._ask(cp_id, call.Reset(type="Hard" if hard else "Soft"))

    async def trigger(self, cp_id: str, message: Trigger,
                      connector_id: int | None = None) -> ControlResult:
        """TriggerMessage; ExtendedTriggerMessage (security extensions) for the messages only it
        can ask for."""
        kind = (call.ExtendedTriggerMessage if message in _EXTENDED_TRIGGERS
                else call.TriggerMessage)
        return await self._ask(cp_id, kind(requested_message=Trigger(message).value,
                                           connector_id=connector_id))

    async def update_firmware(self, cp_id: str, request: FirmwareRequest) -> ControlResult:
        """SignedUpdateFirmware (security extensions) for a signed update, else UpdateFirmware,
        which needs the FirmwareManagement profile (not sent when the charger lists its
        profiles without it). UpdateFirmware's answer carries no status: accepted."""
        if request.signed:
            return await self._ask(cp_id, call.SignedUpdateFirmware(
                request_id=request.request_id, retries=request.retries,
                retry_interval=request.retry_interval, firmware={
                    "location": request.location,
                    "retrieve_date_time": iso(request.retrieve_at),
                    "signing_certificate": request.signing_certificate,
                    "signature": request.signature}), _REPLACED)
        missing = await self._lacks_profile(cp_id, FIRMWARE_PROFILE)
        if missing is not None:
            return missing
        try:
            await self._call(cp_id, call.UpdateFirmware(
                location=request.location, retrieve_date=iso(request.retrieve_at),
                retries=request.retries, retry_interval=request.retry_interval))
        except CallFailed as failed:
            return failed.result
        return ControlResult(Outcome.ACCEPTED)

    async def request_upload(self, cp_id: str, request: UploadRequest) -> UploadResult:
        """GetLog (security extensions) for a log, else GetDiagnostics, which needs the
        FirmwareManagement profile. GetDiagnostics without a file name: nothing to upload."""
        since = iso(request.since) if request.since else None
        until = iso(request.until) if request.until else None
        try:
            if request.log is not None:
                answer = await self._call(cp_id, call.GetLog(
                    log_type=request.log, request_id=request.request_id,
                    retries=request.retries, retry_interval=request.retry_interval,
                    log={"remote_location": request.location, "oldest_timestamp": since,
                         "latest_timestamp": until}))
                status = str(answer.status)
                outcome = _REPLACED.get(status, Outcome.REJECTED)
                reason = "" if outcome == Outcome.ACCEPTED else \
                    f"charge point {cp_id} answered {status} to GetLog"
                return UploadResult(ControlResult(outcome, status, reason), answer.filename)
            missing = await self._lacks_profile(cp_id, FIRMWARE_PROFILE)
            if missing is not None:
                return UploadResult(missing)
            answer = await self._call(cp_id, call.GetDiagnostics(
                location=request.location, retries=request.retries,
                retry_interval=request.retry_interval, start_time=since, stop_time=until))
        except CallFailed as failed:
            return UploadResult(failed.result)
        if not answer.file_name:
            return UploadResult(ControlResult(
                Outcome.REJECTED, reason=f"charge point {cp_id} has no diagnostics to upload"))
        return UploadResult(ControlResult(Outcome.ACCEPTED), answer.file_name)

    async def send_certificate(self, cp_id: str, chain: str) -> ControlResult:
        return await self._ask(cp_id, call.CertificateSigned(certificate_chain=chain))

    async def _lacks_profile(self, cp_id: str, profile: str) -> ControlResult | None:
        """NOT_SUPPORTED when the charger lists its feature profiles and `profile` is not
        among them; None when it has it, or does not say (then its answer will)."""
        config = await self.get_configuration(cp_id, [PROFILES_KEY])
        if config.result.outcome in (Outcome.NOT_CONNECTED, Outcome.TIMEOUT):
            return config.result
        listed = lacks(config.values, profile)
        if listed is None:
            return None
        return ControlResult(Outcome.NOT_SUPPORTED, reason=(
            f"charge point {cp_id} does not support {profile} ({PROFILES_KEY}: {listed});"
            " nothing was sent"))

    async def get_configuration(self, cp_id: str,
                                keys: list[str] | None = None) -> ConfigurationResult:
        # On the payloads as on the wire: every charger is asked at each boot (the metering
        # set-up, strom.ocpp.sampling).
        try:
            answer = await self._call_payload(cp_id, "GetConfiguration",
                                              {"key": keys} if keys else {})
        except CallFailed as failed:
            return ConfigurationResult(failed.result)
        entries = answer.get("configurationKey") or []
        return ConfigurationResult(
            ControlResult(Outcome.ACCEPTED, "Accepted"),
            values={e["key"]: e.get("value") for e in entries},
            readonly=frozenset(e["key"] for e in entries if e.get("readonly")),
            unknown=tuple(answer.get("unknownKey") or ()))

    async def change_configuration(self, cp_id: str, key: str, value: str) -> ControlResult:
        try:
            answer = await self._call_payload(cp_id, "ChangeConfiguration",
                                              {"key": key, "value": value})
        except CallFailed as failed:
            return failed.result
        return self._outcome(cp_id, "ChangeConfiguration", answer["status"])

    async def local_list_settings(self, cp_id: str) -> LocalListSettings:
        """GetConfiguration of the list's keys. A charger that refuses GetConfiguration
        itself (NotSupported) says nothing of its list: GetLocalListVersion tells then."""
        config = await self.get_configuration(cp_id, LIST_KEYS)
        if config.result.outcome == Outcome.NOT_SUPPORTED:
            return LocalListSettings(ControlResult(Outcome.ACCEPTED, "Accepted"))
        if not config.result.ok:
            return LocalListSettings(config.result)
        return list_settings(config.values)

    async def enable_local_list(self, cp_id: str) -> ControlResult:
        return await self.change_configuration(cp_id, "LocalAuthListEnabled", "true")

    async def local_list_version(self, cp_id: str) -> LocalListVersion:
        """GetLocalListVersion; -1 is the charger's way to say it keeps no list."""
        try:
            answer = await self._call(cp_id, call.GetLocalListVersion())
        except CallFailed as failed:
            return LocalListVersion(failed.result)
        version = int(answer.list_version)
        if version < 0:
            return LocalListVersion(ControlResult(
                Outcome.NOT_SUPPORTED, str(version),
                f"charge point {cp_id} answered GetLocalListVersion -1: it has no local list"))
        return LocalListVersion(ControlResult(Outcome.ACCEPTED, "Accepted"), version)

    async def send_local_list(self, cp_id: str, version: int, entries: Sequence[ListEntry], *,
                              full: bool) -> ControlResult:
        return await self._ask(cp_id, call.SendLocalList(
            list_version=version, update_type="Full" if full else "Differential",
            local_authorization_list=[list_entry(e) for e in entries]))

    async def clear_cache(self, cp_id: str) -> ControlResult:
        return await self._ask(cp_id, call.ClearCache())

    async def reserve_now(self, cp_id: str, connector_id: int, *, expiry: datetime,
                          id_tag: str, reservation_id: int) -> ControlResult:
        return await self._ask(cp_id, call.ReserveNow(
            connector_id=connector_id, expiry_date=iso(expiry), id_tag=id_tag,
            reservation_id=reservation_id))

    async def cancel_reservation(self, cp_id: str, reservation_id: int) -> ControlResult:
        return await self._ask(cp_id, call.CancelReservation(reservation_id=reservation_id))

    async def reservations_supported(self, cp_id: str) -> ControlResult:
        """The Reservation profile in `SupportedFeatureProfiles` (or no list: its answer to
        ReserveNow will tell)."""
        return await self._lacks_profile(cp_id, "Reservation") or \
            ControlResult(Outcome.ACCEPTED, "Accepted")


def _refused(cp_id: str, action: str, code: str, description: str) -> ControlResult:
    outcome = Outcome.NOT_SUPPORTED if code in _UNSUPPORTED_CODES else Outcome.ERROR
    return ControlResult(outcome, reason=f"charge point {cp_id} refused {action}: {code}"
                         f" {description}".strip(), code=code)
