"""Admin REST: `POST /api/v1/commands/{cp_id}/{reset|unlock|trigger|availability|limit}`.

Each command is one operator command (`strom.chargers.operator`): checked, sent to the charger,
audited. The answer is the charger's status word and the protocol-neutral `outcome`; a charger
that is not connected is 409, one that answers CALLERROR is 502 with its error code, one that
does not answer in time is 504.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from strom.chargers.control import ControlResult, Outcome, Trigger
from strom.chargers.operator import CommandRefused, OperatorCommands, UnknownChargePoint
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse
from strom.web.validation import InvalidInput, Strict, Whole, read_body

BY = "admin api"


class ResetBody(Strict):
    type: Literal["Soft", "Hard"] = "Soft"


class UnlockBody(Strict):
    connector_id: Whole = Field(ge=1, le=16)


class TriggerBody(Strict):
    message: Trigger
    connector_id: Whole | None = Field(None, ge=0, le=16)


class AvailabilityBody(Strict):
    connector_id: Whole = Field(0, ge=0, le=16, description="0 is the whole charge point.")
    operative: bool


class LimitBody(Strict):
    connector_id: Whole = Field(0, ge=0, le=16, description="0 is the whole charge point.")
    watts: float | None = Field(description="The cap in W; null lifts strom's cap.")


Command = Callable[[OperatorCommands, str, Request], Awaitable[ControlResult]]


async def _reset(ops: OperatorCommands, cp_id: str, request: Request) -> ControlResult:
    body = await read_body(request, ResetBody)
    return await ops.reset(cp_id, hard=body.type == "Hard", by=BY)


async def _unlock(ops: OperatorCommands, cp_id: str, request: Request) -> ControlResult:
    body = await read_body(request, UnlockBody)
    return await ops.unlock(cp_id, body.connector_id, by=BY)


async def _trigger(ops: OperatorCommands, cp_id: str, request: Request) -> ControlResult:
    body = await read_body(request, TriggerBody)
    return await ops.trigger(cp_id, body.message, body.connector_id, by=BY)


async def _availability(ops: OperatorCommands, cp_id: str, request: Request) -> ControlResult:
    body = await read_body(request, AvailabilityBody)
    return await ops.set_availability(cp_id, body.connector_id, body.operative, by=BY)


async def _limit(ops: OperatorCommands, cp_id: str, request: Request) -> ControlResult:
    body = await read_body(request, LimitBody)
    return await ops.set_power_limit(cp_id, body.connector_id, body.watts, by=BY)


async def _cancel_reservation(ops: OperatorCommands, cp_id: str,
                              request: Request) -> ControlResult:
    body = await read_body(request, UnlockBody)
    return await ops.cancel_reservation(cp_id, body.connector_id,
                                        services(request).use_cases.reservations, by=BY)


COMMANDS: dict[str, tuple[Command, type[BaseModel]]] = {
    "reset": (_reset, ResetBody), "unlock": (_unlock, UnlockBody),
    "trigger": (_trigger, TriggerBody), "availability": (_availability, AvailabilityBody),
    "limit": (_limit, LimitBody), "cancel-reservation": (_cancel_reservation, UnlockBody),
}


def _endpoint(name: str, command: Command) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        require_admin(request)
        svc = services(request)
        ops = OperatorCommands(svc.charge_points, svc.chargers, svc.event_log)
        cp_id = request.path_params["cp_id"]
        try:
            result = await command(ops, cp_id, request)
        except UnknownChargePoint:
            raise HTTPException(404, "unknown charge point") from None
        except CommandRefused as exc:
            raise InvalidInput([{"loc": ["body", exc.field] if exc.field else ["body"],
                                 "msg": exc.message}]) from None
        if result.outcome == Outcome.NOT_CONNECTED:
            raise HTTPException(409, result.reason)
        if result.outcome == Outcome.TIMEOUT:
            raise HTTPException(504, result.reason)
        if result.code is not None:
            return JSONResponse({"error": result.reason, "code": result.code,
                                 "outcome": result.outcome.value}, status_code=502)
        return JSONResponse({"cp_id": cp_id, "command": name, "status": result.status,
                             "outcome": result.outcome.value})

    endpoint.__name__ = f"command_{name}"
    return endpoint


routes = [Route(f"/api/v1/commands/{{cp_id}}/{name}", _endpoint(name, command), methods=["POST"])
          for name, (command, _body) in COMMANDS.items()]
