"""The credentials module's logic: token A → B/C per eMSP party (OCPI 2.2.1 part 7).

The operator issues a token A for one eMSP (`strom ocpi add NAME`, the admin API) and hands
it over with strom's versions URL. The eMSP calls strom with token A and POSTs its
credentials (its token B and versions URL); strom fetches the eMSP's versions and endpoints
with token B through the outbound fence, issues token C and forgets token A. PUT renews token
C (and strom re-reads the eMSP's endpoints), DELETE unregisters: every token of the party stops
working.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from strom.config import Settings
from strom.ocpi import VERSION
from strom.ocpi.envelope import (
    INVALID_PARAMETERS,
    NO_MATCHING_ENDPOINTS,
    UNABLE_TO_USE_CLIENT_API,
    UNSUPPORTED_VERSION,
    OcpiError,
    Unauthorized,
    validated,
)
from strom.ocpi.tokens import MAX_TOKEN, candidates, header_value, new_token, token_hash
from strom.outbound import Outbound, OutboundError
from strom.store.ocpi import OcpiPartyRepository, PartyRecord

log = logging.getLogger(__name__)

MAX_ANSWER = 256 * 1024  # an eMSP's versions or endpoints answer


class BusinessDetails(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class CredentialsRole(BaseModel):
    role: str = Field(pattern=r"^(CPO|EMSP|HUB|NAP|NSP|OTHER|SCSP)$")
    party_id: str = Field(pattern=r"^[A-Za-z0-9]{3}$")
    country_code: str = Field(pattern=r"^[A-Za-z]{2}$")
    business_details: BusinessDetails


class Credentials(BaseModel):
    """The eMSP's credentials object, as POSTed or PUT."""

    token: str = Field(min_length=1, max_length=MAX_TOKEN, pattern=r"^[\x21-\x7e]+$")
    url: str = Field(min_length=1, max_length=255, pattern=r"^https?://")
    roles: list[CredentialsRole] = Field(min_length=1, max_length=10)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the party and which of its tokens it used ("A" or "C")."""

    party: PartyRecord
    token: str

    @property
    def registered(self) -> bool:
        return self.token == "C"


def parse_credentials(body: Any) -> Credentials:
    """The eMSP's credentials, or OCPI 2001 naming what is wrong."""
    credentials = validated(Credentials, body, "credentials")
    if not any(role.role == "EMSP" for role in credentials.roles):
        raise OcpiError(INVALID_PARAMETERS, "credentials: roles has no EMSP role")
    return credentials


class PartyService:
    """eMSP parties: issue token A, authenticate, register, update, unregister."""

    def __init__(self, repo: OcpiPartyRepository, settings: Settings, outbound: Outbound) -> None:
        self._repo = repo
        self._settings = settings
        self._outbound = outbound

    @property
    def versions_url(self) -> str:
        return f"{self._settings.public_url}/ocpi/versions"

    async def issue(self, name: str) -> tuple[PartyRecord, str]:
        """A new pending party and its token A (shown once, stored hashed)."""
        token = new_token()
        return await self._repo.create(name, token_hash(token)), token

    async def all(self) -> list[PartyRecord]:
        """Every party, also pending and unregistered ones (CLI, admin API)."""
        return await self._repo.list()

    async def registered(self) -> list[PartyRecord]:
        return await self._repo.list(registered_only=True)

    async def get(self, party_id: int) -> PartyRecord | None:
        return await self._repo.get(party_id)

    async def remove(self, party_id: int) -> bool:
        """Unregister a party from strom's side: its tokens stop working at once."""
        return await self._repo.unregister(party_id)

    async def authenticate(self, authorization: str | None) -> Caller:
        """The party behind an `Authorization: Token …` header, or `Unauthorized`."""
        for token in candidates(authorization):
            found = await self._repo.by_token(token_hash(token))
            if found is not None:
                return Caller(found[0], found[1])
        raise Unauthorized()

    def own_credentials(self, token_c: str) -> dict[str, Any]:
        """strom's credentials object, carrying the token the eMSP is to use (token C)."""
        ocpi = self._settings.ocpi
        return {"token": token_c, "url": self.versions_url, "roles": [{
            "role": "CPO", "party_id": ocpi.party_id, "country_code": ocpi.country_code,
            "business_details": {"name": ocpi.business_name}}]}

    async def register(self, caller: Caller, body: Any) -> dict[str, Any]:
        """POST (token A) or PUT (token C): read the eMSP's endpoints, issue a new token C."""
        credentials = parse_credentials(body)
        emsp = next(role for role in credentials.roles if role.role == "EMSP")
        endpoints = await self._fetch_endpoints(credentials)
        token_c = new_token()
        ok = await self._repo.register(
            caller.party.id, token_b=credentials.token, token_c_hash=token_hash(token_c),
            country_code=emsp.country_code.upper(), party=emsp.party_id.upper(),
            versions_url=credentials.url, version=VERSION, endpoints=endpoints,
            credentials=credentials.model_dump())
        if not ok:
            raise OcpiError(INVALID_PARAMETERS, f"party {emsp.country_code}/{emsp.party_id} is "
                            "already registered with another token")
        log.info("OCPI party %s registered as %s/%s", caller.party.name, emsp.country_code,
                 emsp.party_id)
        return self.own_credentials(token_c)

    async def _fetch_endpoints(self, credentials: Credentials) -> list[dict[str, Any]]:
        """The eMSP's 2.2.1 endpoints, read with its token B (3001/3002/3003 when not)."""
        headers = {"Authorization": header_value(credentials.token)}
        versions = await self._fetch(credentials.url, headers)
        if not isinstance(versions, list):
            raise OcpiError(UNABLE_TO_USE_CLIENT_API, "the versions answer holds no list", 400)
        url = next((v.get("url") for v in versions
                    if isinstance(v, dict) and v.get("version") == VERSION), None)
        if not isinstance(url, str):
            raise OcpiError(UNSUPPORTED_VERSION, f"the eMSP offers no version {VERSION}", 400)
        details = await self._fetch(url, headers)
        endpoints = details.get("endpoints") if isinstance(details, dict) else None
        if not isinstance(endpoints, list):
            raise OcpiError(NO_MATCHING_ENDPOINTS, "the version details hold no endpoints", 400)
        kept = [{"identifier": str(e["identifier"]), "role": str(e.get("role", "")),
                 "url": str(e["url"])} for e in endpoints[:50]
                if isinstance(e, dict) and isinstance(e.get("identifier"), str)
                and isinstance(e.get("url"), str) and e["url"].startswith(("http://", "https://"))]
        if not kept:
            raise OcpiError(NO_MATCHING_ENDPOINTS, "the eMSP names no usable endpoint", 400)
        return kept

    async def _fetch(self, url: str, headers: dict[str, str]) -> Any:
        try:
            fetched = await self._outbound.get(url, headers=headers, max_bytes=MAX_ANSWER)
            body = json.loads(fetched.body)
        except (OutboundError, ValueError) as exc:
            raise OcpiError(UNABLE_TO_USE_CLIENT_API,
                            f"cannot read the eMSP's {url}: {exc}", 400) from None
        if fetched.status != 200 or not isinstance(body, dict):
            raise OcpiError(UNABLE_TO_USE_CLIENT_API,
                            f"the eMSP's {url} answered HTTP {fetched.status}", 400)
        return body.get("data")


def endpoint(party: PartyRecord, identifier: str, role: str = "RECEIVER") -> str | None:
    """The party's URL of one module in one role (2.2.1 endpoints name both), if it has one."""
    return next((e["url"] for e in party.endpoints
                 if e["identifier"] == identifier and e.get("role", role) in (role, "")), None)


def party_view(party: PartyRecord) -> dict[str, Any]:
    """What the operator sees of a party (CLI, admin API): never a token."""
    return {"id": party.id, "name": party.name, "state": party.state,
            "country_code": party.country_code, "party_id": party.party_id,
            "versions_url": party.versions_url, "version": party.version,
            "modules": sorted({e["identifier"] for e in party.endpoints}),
            "created_at": party.created_at, "updated_at": party.updated_at}
