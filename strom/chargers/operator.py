"""Operator commands: reset, unlock, trigger, availability, power limit, firmware update,
diagnostics upload and cancelling a paid reservation, one home for all.

The admin API (and the CLI and TUI through it) and the operators' nostr DMs call these, and
only these: each checks the charger and the connector, asks the charger through
`ChargerControl` and writes one audit entry (`operator_command` in the event log: command,
arguments, who, outcome, the charger's word). Input strom refuses never reaches the charger
and is not audited: nothing happened.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from strom.chargers.control import (
    ChargerControl,
    ControlResult,
    FirmwareRequest,
    Trigger,
    UploadRequest,
    UploadResult,
)
from strom.store.charge_points import ChargePointRepository, ChargerRecord
from strom.store.event_log import EventLogRepository
from strom.timeutil import iso

log = logging.getLogger(__name__)

# A power limit strom sends: above 0 W, at most what a charger's meter bounds allow (1 MW).
MAX_LIMIT_W = 1_000_000.0


class CommandRefused(Exception):
    """strom refused the command before asking the charger; `field` names the wrong argument."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class UnknownChargePoint(CommandRefused):
    def __init__(self, cp_id: str) -> None:
        super().__init__(f"unknown charge point {cp_id}")


class ReservationRelease(Protocol):
    """What frees a connector a paid reservation holds (`strom.sessions.reservations`)."""

    async def cancel_by_operator(self, cp_id: str, connector_id: int) -> ControlResult: ...


class OperatorCommands:
    """One method per command; `by` says who gave it ("admin api", "nostr:<hex pubkey>")."""

    def __init__(self, charge_points: ChargePointRepository, chargers: ChargerControl,
                 audit: EventLogRepository) -> None:
        self._charge_points = charge_points
        self._chargers = chargers
        self._audit = audit

    async def reset(self, cp_id: str, *, hard: bool = False, by: str) -> ControlResult:
        """Reboot the charger (soft: after its transactions end; hard: now)."""
        await self._charger(cp_id)
        result = await self._chargers.reset(cp_id, hard=hard)
        return await self._record("reset", cp_id, {"type": "Hard" if hard else "Soft"}, by,
                                  result)

    async def unlock(self, cp_id: str, connector_id: int, *, by: str) -> ControlResult:
        """Release the cable locked in a connector (1 … n)."""
        _connector(await self._charger(cp_id), connector_id, lowest=1)
        result = await self._chargers.unlock(cp_id, connector_id)
        return await self._record("unlock", cp_id, {"connector_id": connector_id}, by, result)

    async def trigger(self, cp_id: str, message: Trigger, connector_id: int | None = None,
                      *, by: str) -> ControlResult:
        """Ask the charger to send `message` now (for one connector, or 0 / None: all)."""
        cp = await self._charger(cp_id)
        if connector_id is not None:
            _connector(cp, connector_id, lowest=0)
        result = await self._chargers.trigger(cp_id, message, connector_id)
        return await self._record("trigger", cp_id, {"message": Trigger(message).value,
                                                     "connector_id": connector_id}, by, result)

    async def set_availability(self, cp_id: str, connector_id: int, operative: bool, *,
                               by: str) -> ControlResult:
        """Take a connector (or with 0 the whole charger) out of service, or back in."""
        _connector(await self._charger(cp_id), connector_id, lowest=0)
        result = await self._chargers.set_availability(cp_id, connector_id, operative)
        return await self._record("availability", cp_id, {"connector_id": connector_id,
                                                          "operative": operative}, by, result)

    async def set_power_limit(self, cp_id: str, connector_id: int, watts: float | None, *,
                              by: str) -> ControlResult:
        """Cap a connector's (0: the whole charger's) power at `watts`; None lifts the cap."""
        _connector(await self._charger(cp_id), connector_id, lowest=0)
        if watts is not None and not 0 < watts <= MAX_LIMIT_W:
            raise CommandRefused(f"a power limit is more than 0 W and at most"
                                 f" {MAX_LIMIT_W:,.0f} W", "watts")
        result = await self._chargers.set_power_limit(cp_id, connector_id, watts)
        return await self._record("limit", cp_id, {"connector_id": connector_id,
                                                   "watts": watts}, by, result)

    async def update_firmware(self, cp_id: str, request: FirmwareRequest, *,
                              by: str) -> ControlResult:
        """Have the charger install firmware (`strom.chargers.firmware` makes the link)."""
        await self._charger(cp_id)
        result = await self._chargers.update_firmware(cp_id, request)
        # The location is not audited: its token is a capability.
        return await self._record("firmware", cp_id, {
            "update_id": request.request_id, "retrieve_at": iso(request.retrieve_at),
            "retries": request.retries, "retry_interval": request.retry_interval,
            "signed": request.signed}, by, result)

    async def request_upload(self, cp_id: str, request: UploadRequest, *,
                             by: str) -> UploadResult:
        """Have the charger upload diagnostics or a log (the link from `strom.chargers.firmware`)."""
        await self._charger(cp_id)
        answer = await self._chargers.request_upload(cp_id, request)
        await self._record("diagnostics", cp_id, {
            "diagnostics_id": request.request_id, "log": request.log,
            "file_name": answer.file_name}, by, answer.result)
        return answer

    async def send_certificate(self, cp_id: str, request_id: int, chain: str, *,
                               by: str) -> ControlResult:
        """Install a signed certificate chain answering the charger's CSR `request_id`."""
        await self._charger(cp_id)
        result = await self._chargers.send_certificate(cp_id, chain)
        return await self._record("certificate", cp_id, {"certificate_request_id": request_id},
                                  by, result)

    async def cancel_reservation(self, cp_id: str, connector_id: int,
                                 reservations: ReservationRelease, *, by: str) -> ControlResult:
        """Release the paid reservation holding a connector (1 … n); its fee is refundable."""
        _connector(await self._charger(cp_id), connector_id, lowest=1)
        result = await reservations.cancel_by_operator(cp_id, connector_id)
        return await self._record("cancel_reservation", cp_id, {"connector_id": connector_id},
                                  by, result)

    async def _charger(self, cp_id: str) -> ChargerRecord:
        cp = await self._charge_points.get(cp_id)
        if cp is None:
            raise UnknownChargePoint(cp_id)
        return cp

    async def _record(self, command: str, cp_id: str, args: dict[str, Any], by: str,
                      result: ControlResult) -> ControlResult:
        log.info("operator command %s to %s by %s: %s %s", command, cp_id, by, result.outcome,
                 result.status or result.reason)
        await self._audit.append("operator_command", {
            "command": command, "args": args, "by": by, "outcome": result.outcome.value,
            "status": result.status, "reason": result.reason or None, "code": result.code},
            cp_id=cp_id)
        return result


def _connector(cp: ChargerRecord, connector_id: int, *, lowest: int) -> None:
    if not lowest <= connector_id <= cp.num_connectors:
        raise CommandRefused(f"{cp.id} has connectors {lowest}..{cp.num_connectors}",
                             "connector_id")
