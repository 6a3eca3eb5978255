"""Admin REST for OCPI parties (issue 24): issue a token A, list, remove. Translates only:
the rules are `strom.ocpi`."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strom.ocpi.parties import party_view
from strom.ocpi.service import OcpiService
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse
from strom.web.validation import Strict, read_body


class PartyCreate(Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$",
                      description="Whom the token A is for (the eMSP's name).")


class Party(BaseModel):
    id: int
    name: str
    state: str = Field(description="pending (token A issued), registered, unregistered")
    country_code: str | None
    party_id: str | None
    versions_url: str | None = Field(description="The eMSP's versions URL, once registered.")
    version: str | None
    modules: list[str] = Field(description="The eMSP's modules strom knows of.")
    created_at: str
    updated_at: str


class PartyList(BaseModel):
    items: list[Party]


class PartyIssued(BaseModel):
    party: Party
    token_a: str = Field(description="Shown once: the eMSP registers with it.")
    versions_url: str = Field(description="strom's versions URL, to give with token A.")


def _ocpi(request: Request) -> OcpiService:
    require_admin(request)
    return services(request).ocpi


async def list_parties(request: Request) -> JSONResponse:
    parties = await _ocpi(request).parties.all()
    return JSONResponse({"items": [party_view(p) for p in parties]})


async def create_party(request: Request) -> JSONResponse:
    ocpi = _ocpi(request)
    body = await read_body(request, PartyCreate)
    party, token = await ocpi.parties.issue(body.name)
    return JSONResponse({"party": party_view(party), "token_a": token,
                         "versions_url": ocpi.parties.versions_url}, status_code=201)


async def delete_party(request: Request) -> Response:
    ocpi = _ocpi(request)
    raw = request.path_params["party_id"]
    if not raw.isdigit() or len(raw) > 9 or not await ocpi.remove_party(int(raw)):
        raise HTTPException(404, "no such party that is pending or registered")
    return Response(status_code=204)


routes = [
    Route("/api/v1/ocpi/parties", list_parties, methods=["GET"]),
    Route("/api/v1/ocpi/parties", create_party, methods=["POST"]),
    Route("/api/v1/ocpi/parties/{party_id}", delete_party, methods=["DELETE"]),
]
