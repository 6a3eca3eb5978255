"""What sessions need from a charger connection (the OCPP central system implements it)."""

from __future__ import annotations

from typing import Protocol


class ChargerControl(Protocol):
    """What sessions need from the OCPP central system."""

    def is_connected(self, cp_id: str) -> bool: ...

    async def remote_start(self, cp_id: str, connector_id: int, id_tag: str) -> bool: ...

    async def remote_stop(self, cp_id: str, transaction_id: int) -> bool: ...

    async def trigger_meter_values(self, cp_id: str, connector_id: int) -> bool: ...

    async def trigger_status(self, cp_id: str, connector_id: int) -> bool: ...
