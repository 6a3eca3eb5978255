"""OCPP 1.6 Local Auth List Management calls for `strom.cards.local_list` (its
`LocalListControl`): GetConfiguration of the list's keys, GetLocalListVersion, SendLocalList,
ClearCache.

A charger without the profile may answer a CALLERROR NotSupported (OCPP 1.6 §4.2.3) or
NotImplemented (what many firmwares and the ocpp library send): both mean "no local list".
"""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call

from strom.ocpp.central_system import CentralSystem
from strom.ocpp.commands import CallErrorResponse

KEYS = ["SupportedFeatureProfiles", "LocalAuthListEnabled", "LocalAuthListMaxLength",
        "SendLocalListMaxLength"]
_NOT_SUPPORTED = frozenset({"NotSupported", "NotImplemented"})


class OcppLocalList:
    """The local list calls over the central system's connections."""

    def __init__(self, central: CentralSystem) -> None:
        self._commands = central

    def connected_ids(self) -> list[str]:
        return self._commands.connected_ids()

    async def local_list_config(self, cp_id: str) -> dict[str, str | None]:
        try:
            report = await self._commands.get_configuration(cp_id, KEYS)
        except CallErrorResponse as exc:
            if exc.code in _NOT_SUPPORTED:
                return {}
            raise
        return report.values

    async def enable_local_list(self, cp_id: str) -> str:
        return await self._commands.change_configuration(cp_id, "LocalAuthListEnabled", "true")

    async def local_list_version(self, cp_id: str) -> int:
        try:
            result = await self._commands.call(cp_id, call.GetLocalListVersion())
        except CallErrorResponse as exc:
            if exc.code in _NOT_SUPPORTED:
                return -1
            raise
        return int(result.list_version)

    async def send_local_list(self, cp_id: str, version: int, *, full: bool,
                              entries: list[dict[str, Any]]) -> str:
        try:
            result = await self._commands.call(cp_id, call.SendLocalList(
                list_version=version, update_type="Full" if full else "Differential",
                local_authorization_list=entries))
        except CallErrorResponse as exc:
            if exc.code in _NOT_SUPPORTED:
                return "NotSupported"
            raise
        return str(result.status)

    async def clear_cache(self, cp_id: str) -> bool:
        try:
            return await self._commands.clear_cache(cp_id)
        except CallErrorResponse as exc:
            if exc.code in _NOT_SUPPORTED:
                return False
            raise

