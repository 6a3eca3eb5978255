"""Admin REST: `POST /api/v1/commands/{cp_id}/{reset|unlock|trigger|availability}`.

Each command is one OCPP call to the charger. The answer is the charger's status word; a
charger that is not connected is 409, one that answers CALLERROR is 502 with its error code,
one that does not answer in time is 504.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from strom.ocpp.commands import CallErrorResponse, CallTimeout, ChargePointOffline, ChargerCommands
from strom.store.charge_points import ChargerRecord
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse
from strom.web.validation import InvalidInput, Strict, Whole, read_body

log = logging.getLogger(__name__)

TriggerMessage = Literal["BootNotification", "DiagnosticsStatusNotification",
                         "FirmwareStatusNotification", "Heartbeat", "MeterValues",
                         "StatusNotification"]


class ResetBody(Strict):
    type: Literal["Soft", "Hard"] = "Soft"


class UnlockBody(Strict):
    connector_id: Whole = Field(ge=1, le=16)


class TriggerBody(Strict):
    message: TriggerMessage
    connector_id: Whole | None = Field(None, ge=0, le=16)


class AvailabilityBody(Strict):
    connector_id: Whole = Field(0, ge=0, le=16, description="0 is the whole charge point.")
    operative: bool


def _check_connector(cp: ChargerRecord, connector_id: int | None, lowest: int) -> None:
    if connector_id is not None and not lowest <= connector_id <= cp.num_connectors:
        raise InvalidInput([{"loc": ["body", "connector_id"],
                             "msg": f"{cp.id} has connectors {lowest}..{cp.num_connectors}"}])


async def _reset(chargers: ChargerCommands, cp: ChargerRecord, request: Request) -> str:
    body = await read_body(request, ResetBody)
    accepted = await chargers.reset(cp.id, hard=body.type == "Hard")
    return "Accepted" if accepted else "Rejected"


async def _unlock(chargers: ChargerCommands, cp: ChargerRecord, request: Request) -> str:
    body = await read_body(request, UnlockBody)
    _check_connector(cp, body.connector_id, 1)
    return await chargers.unlock(cp.id, body.connector_id)


async def _trigger(chargers: ChargerCommands, cp: ChargerRecord, request: Request) -> str:
    body = await read_body(request, TriggerBody)
    _check_connector(cp, body.connector_id, 0)
    return await chargers.trigger_message(cp.id, body.message, body.connector_id)


async def _availability(chargers: ChargerCommands, cp: ChargerRecord, request: Request) -> str:
    body = await read_body(request, AvailabilityBody)
    _check_connector(cp, body.connector_id, 0)
    return await chargers.change_availability(cp.id, body.connector_id, body.operative)


Command = Callable[[ChargerCommands, ChargerRecord, Request], Awaitable[str]]
COMMANDS: dict[str, tuple[Command, type[BaseModel]]] = {
    "reset": (_reset, ResetBody), "unlock": (_unlock, UnlockBody),
    "trigger": (_trigger, TriggerBody), "availability": (_availability, AvailabilityBody),
}


def _endpoint(name: str, command: Command) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        require_admin(request)
        svc = services(request)
        cp = await svc.charge_points.get(request.path_params["cp_id"])
        if cp is None:
            raise HTTPException(404, "unknown charge point")
        try:
            status = await command(svc.central_system, cp, request)
        except ChargePointOffline as exc:
            raise HTTPException(409, str(exc)) from None
        except CallTimeout as exc:
            raise HTTPException(504, str(exc)) from None
        except CallErrorResponse as exc:
            return JSONResponse({"error": str(exc), "code": exc.code}, status_code=502)
        log.info("operator command %s to %s: %s", name, cp.id, status)
        await svc.event_log.append("operator_command", {"command": name, "status": status},
                                   cp_id=cp.id)
        return JSONResponse({"cp_id": cp.id, "command": name, "status": status})

    endpoint.__name__ = f"command_{name}"
    return endpoint


routes = [Route(f"/api/v1/commands/{{cp_id}}/{name}", _endpoint(name, command), methods=["POST"])
          for name, (command, _body) in COMMANDS.items()]
