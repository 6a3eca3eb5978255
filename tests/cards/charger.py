"""A charger with a local authorization list: the ocpp library's 1.6 ChargePoint (via
`tests.api.charger.TestCharger`) answering GetConfiguration, GetLocalListVersion,
SendLocalList and ClearCache as OCPP 1.6 §5.9/§5.15/§5.4 say, and a card reader."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from strom.timeutil import iso
from tests.api.charger import TestCharger


class CardCharger(TestCharger):
    """`profiles` is what it reports as SupportedFeatureProfiles; without
    LocalAuthListManagement it answers the list calls NotImplemented (no handler)."""

    profiles = "Core,FirmwareManagement,LocalAuthListManagement,RemoteTrigger"

    def __init__(self, cp_id: str, ws: Any, connectors: int) -> None:
        super().__init__(cp_id, ws, connectors)
        self.list_version = 0
        self.local_list: dict[str, str] = {}  # idTag (upper case) → status
        self.updates: list[tuple[str, int, list[dict[str, Any]]]] = []
        self.cache_cleared = 0

    @property
    def has_list(self) -> bool:
        return "LocalAuthListManagement" in self.profiles

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None
                                   ) -> call_result.GetConfiguration:
        known = {"SupportedFeatureProfiles": self.profiles, "LocalAuthListEnabled": "true",
                 "LocalAuthListMaxLength": "100", "SendLocalListMaxLength": "2"}
        wanted = key or list(known)
        return call_result.GetConfiguration(
            configuration_key=[{"key": k, "readonly": True, "value": known[k]}
                               for k in wanted if k in known],
            unknown_key=[k for k in wanted if k not in known] or None)

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str
                                      ) -> call_result.ChangeConfiguration:
        return call_result.ChangeConfiguration(status="NotSupported")

    @on(Action.get_local_list_version)
    async def on_get_local_list_version(self) -> call_result.GetLocalListVersion:
        return call_result.GetLocalListVersion(list_version=self.list_version)

    @on(Action.send_local_list)
    async def on_send_local_list(self, list_version: int, update_type: str,
                                 local_authorization_list: list[dict[str, Any]] | None = None
                                 ) -> call_result.SendLocalList:
        entries = local_authorization_list or []
        self.updates.append((update_type, list_version, entries))
        if update_type == "Full":
            self.local_list = {}
        for entry in entries:
            tag = entry["id_tag"].upper()
            info = entry.get("id_tag_info")
            if info is None:
                self.local_list.pop(tag, None)
            else:
                self.local_list[tag] = info["status"]
        self.list_version = list_version
        return call_result.SendLocalList(status="Accepted")

    @on(Action.clear_cache)
    async def on_clear_cache(self) -> call_result.ClearCache:
        self.cache_cleared += 1
        return call_result.ClearCache(status="Accepted")

    async def tap(self, connector: int, id_tag: str, meter_start: int = 0,
                  timestamp: str | None = None) -> tuple[str, str]:
        """A card held to the reader: Authorize, then StartTransaction when accepted.
        (Authorize status, StartTransaction status); the transaction is kept when accepted."""
        authorized = await self.call(call.Authorize(id_tag=id_tag))
        status = authorized.id_tag_info["status"]
        if status != "Accepted":
            return status, ""
        return status, await self.start_with(connector, id_tag, meter_start, timestamp)

    async def start_with(self, connector: int, id_tag: str, meter_start: int = 0,
                         timestamp: str | None = None) -> str:
        """StartTransaction (also one queued while offline: its `timestamp` is earlier)."""
        started = await self.call(call.StartTransaction(
            connector_id=connector, id_tag=id_tag, meter_start=meter_start,
            timestamp=timestamp or iso()))
        status = str(started.id_tag_info["status"])
        if status == "Accepted":
            self.transactions[connector] = started.transaction_id
            self.energy_wh[connector] = float(meter_start)
            await self.status(connector, "Charging")
        return status

    async def stop(self, connector: int, timestamp: str | None = None) -> None:
        """The driver taps again: StopTransaction at the connector's register."""
        await self.call(call.StopTransaction(
            meter_stop=int(self.energy_wh[connector]), timestamp=timestamp or iso(),
            transaction_id=self.transactions.pop(connector), reason="Local"))
        await self.status(connector, "Available")


class NoListCharger(CardCharger):
    """A charger without Local Auth List Management (many AC wallboxes)."""

    profiles = "Core,RemoteTrigger"


# Without the profile it has no list handlers at all: the ocpp library answers NotImplemented.
for _action in ("on_get_local_list_version", "on_send_local_list"):
    setattr(NoListCharger, _action, None)
