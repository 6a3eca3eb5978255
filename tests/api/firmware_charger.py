"""A charger with firmware management and the 1.6 security extensions, for the tests.

The ocpp library's ChargePoint (through `TestCharger`) answers UpdateFirmware, GetDiagnostics,
SignedUpdateFirmware, GetLog and ExtendedTriggerMessage as a real charger does: it fetches the
firmware from the link with httpx and reports each step (FirmwareStatusNotification), and
uploads its diagnostics with httpx (a multipart POST, as many chargers do; GetLog's log by
PUT), reporting DiagnosticsStatusNotification / LogStatusNotification.
"""

from __future__ import annotations

from typing import Any

import httpx
from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from strom.timeutil import iso
from tests.api.charger import TestCharger

DIAGNOSTICS = b"2026-11-27T08:00:00Z boot ok\n" * 40
SECURITY_LOG = b"2026-11-27T08:00:00Z SettingSystemTime\n" * 10


class FirmwareCharger(TestCharger):
    """Installs firmware and uploads diagnostics over HTTP; `profiles` is its
    SupportedFeatureProfiles, `diagnostics` what it uploads."""

    __test__ = False

    profiles = "Core,FirmwareManagement,RemoteTrigger"

    def __init__(self, cp_id: str, ws: Any, connectors: int) -> None:
        super().__init__(cp_id, ws, connectors)
        self.firmware: bytes | None = None  # the image it downloaded
        self.second_download: int | None = None  # the HTTP status of fetching the link again
        self.upload_answers: list[int] = []  # HTTP statuses of its uploads
        self.diagnostics = DIAGNOSTICS
        # "form": a multipart POST to the location; "put": a PUT of the file to the location
        # plus "/" and the file name, as EVerest (curl --upload-file,
        # https://github.com/EVerest/libocpp/issues/459) and MicroOcpp
        # (https://github.com/matth-x/MicroOcpp/issues/397) build it.
        self.upload_style = "form"
        self.diagnostics_name = "diag-2026.zip"
        self.firmware_state = "Idle"
        self.mangle_link = False  # fetch the link with a wrong token (a charger that mangles it)
        self.csr = ""  # the PEM CSR it sends when asked for SignChargePointCertificate
        self.certificate: str | None = None  # the chain CertificateSigned brought

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None
                                   ) -> call_result.GetConfiguration:
        self.asked.append(("GetConfiguration", {"key": key}))
        return call_result.GetConfiguration(configuration_key=[
            {"key": "SupportedFeatureProfiles", "readonly": True, "value": self.profiles}])

    # --- firmware -------------------------------------------------------------------------

    @on(Action.update_firmware)
    async def on_update_firmware(self, location: str, retrieve_date: str,
                                 retries: int | None = None,
                                 retry_interval: int | None = None
                                 ) -> call_result.UpdateFirmware:
        self.asked.append(("UpdateFirmware", {"location": location, "retries": retries,
                                              "retry_interval": retry_interval}))
        self._spawn(self._install(location, None))
        return call_result.UpdateFirmware()

    @on(Action.signed_update_firmware)
    async def on_signed_update(self, request_id: int, firmware: dict[str, Any],
                               **_: Any) -> call_result.SignedUpdateFirmware:
        self.asked.append(("SignedUpdateFirmware", {"request_id": request_id, **firmware}))
        self._spawn(self._install(firmware["location"], request_id))
        return call_result.SignedUpdateFirmware(status="Accepted")

    async def _firmware_status(self, status: str, request_id: int | None) -> None:
        self.firmware_state = status
        if request_id is None:
            await self.call(call.FirmwareStatusNotification(status=status))
        else:
            await self.call(call.SignedFirmwareStatusNotification(status=status,
                                                                  request_id=request_id))

    async def _install(self, location: str, request_id: int | None) -> None:
        await self._firmware_status("Downloading", request_id)
        if self.mangle_link:
            base, token, name = location.rsplit("/", 2)
            location = f"{base}/{token[::-1]}/{name}"
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(location)
            if answer.status_code != 200:
                await self._firmware_status("DownloadFailed", request_id)
                return
            self.firmware = answer.content
            self.second_download = (await http.get(location)).status_code
        await self._firmware_status("Downloaded", request_id)
        if request_id is not None:
            await self._firmware_status("SignatureVerified", request_id)
        await self._firmware_status("Installing", request_id)
        await self._firmware_status("Installed", request_id)
        await self.call(call.SecurityEventNotification(
            type="FirmwareUpdated", timestamp=iso(), tech_info="image installed"))

    @on(Action.trigger_message)
    async def on_trigger(self, requested_message: str,
                         connector_id: int | None = None) -> call_result.TriggerMessage:
        self.asked.append(("TriggerMessage", {"requested_message": requested_message}))
        if requested_message == "FirmwareStatusNotification":
            # Not busy with an update: Idle (OCPP 1.6 §6.23).
            self._spawn(self.call(call.FirmwareStatusNotification(status="Idle")))
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.extended_trigger_message)
    async def on_extended_trigger(self, requested_message: str,
                                  connector_id: int | None = None
                                  ) -> call_result.ExtendedTriggerMessage:
        self.asked.append(("ExtendedTriggerMessage", {"requested_message": requested_message}))
        if requested_message == "SignChargePointCertificate":
            self._spawn(self.call(call.SignCertificate(csr=self.csr)))
        if requested_message == "LogStatusNotification":
            # Idle carries no requestId (the schema allows it; the library's class wants it).
            self._spawn(self.call(call.LogStatusNotification(status="Idle", request_id=None)))
        return call_result.ExtendedTriggerMessage(status="Accepted")

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, certificate_chain: str
                                    ) -> call_result.CertificateSigned:
        self.asked.append(("CertificateSigned", {}))
        self.certificate = certificate_chain
        return call_result.CertificateSigned(status="Accepted")

    # --- diagnostics and logs -------------------------------------------------------------

    @on(Action.get_diagnostics)
    async def on_get_diagnostics(self, location: str, **kwargs: Any
                                 ) -> call_result.GetDiagnostics:
        self.asked.append(("GetDiagnostics", {"location": location, **kwargs}))
        if not self.diagnostics:  # nothing to upload: no fileName (OCPP 1.6 §6.26)
            return call_result.GetDiagnostics()
        self._spawn(self._upload_diagnostics(location))
        return call_result.GetDiagnostics(file_name=self.diagnostics_name)

    async def _upload_diagnostics(self, location: str) -> None:
        await self.call(call.DiagnosticsStatusNotification(status="Uploading"))
        async with httpx.AsyncClient(timeout=10) as http:
            if self.upload_style == "put":
                answer = await http.put(f"{location}/{self.diagnostics_name}",
                                        content=self.diagnostics)
            else:
                answer = await http.post(location, files={
                    "file": (self.diagnostics_name, self.diagnostics, "application/zip")})
        self.upload_answers.append(answer.status_code)
        await self.call(call.DiagnosticsStatusNotification(
            status="Uploaded" if answer.status_code < 300 else "UploadFailed"))

    @on(Action.get_log)
    async def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int,
                         **_: Any) -> call_result.GetLog:
        self.asked.append(("GetLog", {"log_type": log_type, "request_id": request_id, **log}))
        self._spawn(self._upload_log(log["remote_location"], request_id))
        return call_result.GetLog(status="Accepted", filename="security.log")

    async def _upload_log(self, location: str, request_id: int) -> None:
        await self.call(call.LogStatusNotification(status="Uploading", request_id=request_id))
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.put(location + "/security.log", content=SECURITY_LOG)
        self.upload_answers.append(answer.status_code)
        await self.call(call.LogStatusNotification(
            status="Uploaded" if answer.status_code < 300 else "UploadFailure",
            request_id=request_id))


class BasicCharger(FirmwareCharger):
    """A charger with the Core and RemoteTrigger profiles only."""

    __test__ = False

    profiles = "Core,RemoteTrigger"
