"""Calls from strom to a charger, as a typed async API with clear failures.

Every call has a timeout and ends in a typed result or one of three exceptions:
`ChargePointOffline`, `CallTimeout`, `CallErrorResponse` (the charger answered CALLERROR).
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from typing import Any

from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError, ValidationError
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed

from strom.ocpp.charge_point import ChargePointConnection


class ChargerCallError(Exception):
    """A call to a charger did not get a usable answer; the message says why."""


class ChargePointOffline(ChargerCallError):
    def __init__(self, cp_id: str) -> None:
        super().__init__(f"charge point {cp_id} is not connected")
        self.cp_id = cp_id


class CallTimeout(ChargerCallError):
    def __init__(self, cp_id: str, action: str, timeout: float) -> None:
        super().__init__(f"charge point {cp_id} did not answer {action} within {timeout:g} s")


class CallErrorResponse(ChargerCallError):
    def __init__(self, cp_id: str, action: str, code: str, description: str) -> None:
        super().__init__(f"charge point {cp_id} refused {action}: {code} {description}".strip())
        self.code = code
        self.description = description


@dataclass(frozen=True, slots=True)
class ConfigurationReport:
    values: dict[str, str | None] = field(default_factory=dict)
    readonly: frozenset[str] = frozenset()
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DataTransferResult:
    status: str
    data: str | None = None


class ChargerCommands(abc.ABC):
    """The calls the rest of strom makes; `CentralSystem` supplies the connections."""

    call_timeout: float

    @abc.abstractmethod
    def connection(self, cp_id: str) -> ChargePointConnection | None: ...

    async def call(self, cp_id: str, payload: Any) -> Any:
        """Send one call and return the ocpp library's typed result."""
        conn = self.connection(cp_id)
        action = type(payload).__name__
        if conn is None:
            raise ChargePointOffline(cp_id)
        limit = self.call_timeout
        try:
            async with asyncio.timeout(limit):
                return await conn.call(payload, suppress=False)
        except TimeoutError:
            raise CallTimeout(cp_id, action, limit) from None
        except ConnectionClosed:
            raise ChargePointOffline(cp_id) from None
        except OCPPError as exc:
            raise CallErrorResponse(cp_id, action, _code(exc), exc.description or "") from None
        except (UnknownCallErrorCodeError, ValidationError) as exc:
            raise CallErrorResponse(cp_id, action, "InvalidResponse", str(exc)) from None

    async def remote_start(self, cp_id: str, connector_id: int, id_tag: str) -> bool:
        result = await self.call(cp_id, call.RemoteStartTransaction(
            id_tag=id_tag, connector_id=connector_id))
        return result.status == "Accepted"

    async def remote_stop(self, cp_id: str, transaction_id: int) -> bool:
        result = await self.call(cp_id, call.RemoteStopTransaction(transaction_id=transaction_id))
        return result.status == "Accepted"

    async def reset(self, cp_id: str, *, hard: bool = False) -> bool:
        result = await self.call(cp_id, call.Reset(type="Hard" if hard else "Soft"))
        return result.status == "Accepted"

    async def unlock(self, cp_id: str, connector_id: int) -> str:
        """`Unlocked`, `UnlockFailed` or `NotSupported`."""
        result = await self.call(cp_id, call.UnlockConnector(connector_id=connector_id))
        return str(result.status)

    async def change_availability(self, cp_id: str, connector_id: int, operative: bool) -> str:
        """`Accepted`, `Rejected` or `Scheduled` (applied after the running transaction)."""
        result = await self.call(cp_id, call.ChangeAvailability(
            connector_id=connector_id, type="Operative" if operative else "Inoperative"))
        return str(result.status)

    async def get_configuration(self, cp_id: str, keys: list[str] | None = None) -> ConfigurationReport:
        result = await self.call(cp_id, call.GetConfiguration(key=keys or None))
        entries = result.configuration_key or []
        return ConfigurationReport(
            values={e["key"]: e.get("value") for e in entries},
            readonly=frozenset(e["key"] for e in entries if e.get("readonly")),
            unknown=tuple(result.unknown_key or ()))

    async def change_configuration(self, cp_id: str, key: str, value: str) -> str:
        """`Accepted`, `Rejected`, `RebootRequired` or `NotSupported`."""
        result = await self.call(cp_id, call.ChangeConfiguration(key=key, value=value))
        return str(result.status)

    async def trigger_message(self, cp_id: str, message: str,
                              connector_id: int | None = None) -> str:
        """Ask for BootNotification, Heartbeat, MeterValues, StatusNotification, …"""
        result = await self.call(cp_id, call.TriggerMessage(requested_message=message,
                                                            connector_id=connector_id))
        return str(result.status)

    async def trigger_meter_values(self, cp_id: str, connector_id: int) -> bool:
        """Ask for a MeterValues of `connector_id` now (the session watchdog)."""
        return await self.trigger_message(cp_id, "MeterValues", connector_id) == "Accepted"

    async def trigger_status(self, cp_id: str, connector_id: int) -> bool:
        """Ask for a StatusNotification of `connector_id` now (an unconfirmed stop)."""
        return await self.trigger_message(cp_id, "StatusNotification", connector_id) == "Accepted"

    async def clear_cache(self, cp_id: str) -> bool:
        result = await self.call(cp_id, call.ClearCache())
        return result.status == "Accepted"

    async def data_transfer(self, cp_id: str, vendor_id: str, message_id: str | None = None,
                            data: str | None = None) -> DataTransferResult:
        result = await self.call(cp_id, call.DataTransfer(vendor_id=vendor_id,
                                                          message_id=message_id, data=data))
        return DataTransferResult(str(result.status), result.data)


def _code(exc: OCPPError) -> str:
    return str(getattr(exc, "code", type(exc).__name__))
