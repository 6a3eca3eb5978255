"""The Tokens module, strom the Receiver (OCPI 2.2.1 part 12): the eMSPs' token lists, and
whether a charger's idTag may charge on an eMSP's account.

An eMSP PUTs its tokens (and PATCHes changes); a charger's Authorize or StartTransaction with
an idTag that is the uid of one is decided by its whitelist: ALWAYS/ALLOWED/ALLOWED_OFFLINE
(and valid) from the list, NEVER by asking the eMSP (real-time authorization, POST
`{tokens}/{uid}/authorize`, within `REALTIME_SECONDS`), whose answer is kept a minute so the
StartTransaction that follows an Authorize does not ask again.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pydantic import BaseModel, Field

from strom.bounded import Bounded
from strom.ocpi.envelope import INVALID_PARAMETERS, OcpiError, validated
from strom.ocpi.parties import Caller, PartyService, endpoint
from strom.ocpi.tokens import header_value
from strom.outbound import Outbound, OutboundError
from strom.store.ocpi import TokenRecord, TokenRepository

log = logging.getLogger(__name__)

REALTIME_SECONDS = 5.0
REMEMBER_SECONDS = 60.0
# AuthorizationInfo.allowed → OCPP 1.6 AuthorizationStatus.
_OCPP = {"ALLOWED": "Accepted", "BLOCKED": "Blocked", "EXPIRED": "Expired",
         "NO_CREDIT": "Invalid", "NOT_ALLOWED": "Invalid"}


class Token(BaseModel):
    """The Token object (2.2.1 part 12.3.2), as much as strom needs of it."""

    country_code: str = Field(pattern=r"^[A-Za-z]{2}$")
    party_id: str = Field(pattern=r"^[A-Za-z0-9]{3}$")
    uid: str = Field(min_length=1, max_length=36, pattern=r"^[\x21-\x7e]+$")
    type: str = Field(pattern=r"^(AD_HOC_USER|APP_USER|OTHER|RFID)$")
    contract_id: str = Field(min_length=1, max_length=36)
    issuer: str = Field(min_length=1, max_length=64)
    valid: bool
    whitelist: str = Field(pattern=r"^(ALWAYS|ALLOWED|ALLOWED_OFFLINE|NEVER)$")
    last_updated: str = Field(min_length=1, max_length=32)


class TokenList:
    def __init__(self, repo: TokenRepository, parties: PartyService, outbound: Outbound) -> None:
        self._repo = repo
        self._parties = parties
        self._outbound = outbound
        self._decided: Bounded[tuple[str, str], tuple[float, str, int, str | None]] = Bounded()

    def _owned(self, caller: Caller, country_code: str, party_id: str) -> None:
        party = caller.party
        if (country_code.upper(), party_id.upper()) != (party.country_code, party.party_id):
            raise OcpiError(INVALID_PARAMETERS, "tokens of another party", 400)

    async def put(self, caller: Caller, country_code: str, party_id: str, uid: str,
                  body: Any) -> None:
        self._owned(caller, country_code, party_id)
        token = validated(Token, body, "token")
        if token.uid != uid or (token.country_code.upper(), token.party_id.upper()) != (
                country_code.upper(), party_id.upper()):
            raise OcpiError(INVALID_PARAMETERS, "the token's uid, country_code and party_id "
                            "must be those of the URL")
        await self._repo.put(caller.party.id, token.model_dump())
        self._forget(uid)

    def _forget(self, uid: str) -> None:
        """A changed token is decided afresh at its next use."""
        for key in [key for key in self._decided if key[1] == uid.upper()]:
            del self._decided[key]

    async def patch(self, caller: Caller, country_code: str, party_id: str, uid: str,
                    type_: str, body: Any) -> None:
        self._owned(caller, country_code, party_id)
        known = await self._repo.get(caller.party.id, uid, type_)
        if known is None:
            raise OcpiError(INVALID_PARAMETERS, f"unknown token {uid}", 404)
        if not isinstance(body, dict) or "last_updated" not in body:
            raise OcpiError(INVALID_PARAMETERS, "a PATCH carries last_updated")
        merged = {**known.token, **{k: v for k, v in body.items() if k not in ("uid", "type")}}
        token = validated(Token, merged, "token")
        await self._repo.put(caller.party.id, token.model_dump())
        self._forget(uid)

    async def get(self, caller: Caller, country_code: str, party_id: str, uid: str,
                  type_: str) -> dict[str, Any]:
        self._owned(caller, country_code, party_id)
        known = await self._repo.get(caller.party.id, uid, type_)
        if known is None:
            raise OcpiError(INVALID_PARAMETERS, f"unknown token {uid}", 404)
        return known.token

    async def authorize(self, cp_id: str, id_tag: str) -> tuple[str, int, str | None] | None:
        """(OCPP status, party, authorization_reference) for an eMSP's token; None for a tag
        that is no eMSP's."""
        remembered = self._decided.get((cp_id, id_tag.upper()))
        if remembered is not None and time.monotonic() - remembered[0] < REMEMBER_SECONDS:
            return remembered[1], remembered[2], remembered[3]
        token = await self._repo.by_id_tag(id_tag)
        if token is None:
            return None
        if not token.valid:
            status, reference = "Blocked", None
        elif token.whitelist != "NEVER":
            status, reference = "Accepted", None
        else:
            status, reference = await self._realtime(token, cp_id)
        self._decided[(cp_id, id_tag.upper())] = (time.monotonic(), status, token.party,
                                                  reference)
        return status, token.party, reference

    async def _realtime(self, token: TokenRecord, cp_id: str) -> tuple[str, str | None]:
        party = await self._parties.get(token.party)
        base = endpoint(party, "tokens", "SENDER") if party else None
        if party is None or base is None or party.token_b is None:
            return "Invalid", None
        url = f"{base.rstrip('/')}/{token.uid}/authorize?type={token.type}"
        try:
            answer = await self._outbound.send(
                "POST", url, json={"location_id": cp_id},
                headers={"Authorization": header_value(party.token_b)},
                max_bytes=64 * 1024, deadline=REALTIME_SECONDS)
            info = json.loads(answer.body).get("data") or {}
        except (OutboundError, ValueError, AttributeError) as exc:
            log.info("real-time authorization of a token of party %d failed: %s",
                     token.party, exc)
            return "Invalid", None
        allowed = info.get("allowed") if isinstance(info, dict) else None
        reference = info.get("authorization_reference") if isinstance(info, dict) else None
        return _OCPP.get(str(allowed), "Invalid"), \
            str(reference)[:36] if isinstance(reference, str) else None

    async def record(self, id_tag: str) -> dict[str, Any] | None:
        """The Token object an idTag is (for the Session's and CDR's `cdr_token`)."""
        token = await self._repo.by_id_tag(id_tag)
        return token.token if token else None
