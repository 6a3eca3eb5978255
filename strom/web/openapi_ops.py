"""Every operation of strom's HTTP API, as data for the OpenAPI document (`strom.web.openapi`).

Bodies and query strings are the pydantic models the routes validate with, so the document
cannot drift from what the server accepts. Pages (HTML) are not part of the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from strom.web import api_cards as c
from strom.web import api_ocpi as o
from strom.web import schemas as s
from strom.web.api_charge_points import ChargePointCreate, ChargePointUpdate
from strom.web.api_commands import COMMANDS
from strom.web.api_firmware import (
    DiagnosticsBody,
    ListQuery,
    SignedBody,
    UpdateBody,
    UploadQuery,
)
from strom.web.api_keys import EncryptBody, GenerateBody, ImportBody, RotateBody
from strom.web.api_sessions import SessionsQuery
from strom.web.api_sites import SiteBody, SiteChargerBody
from strom.web.api_stream import StreamQuery
from strom.web.api_tariffs import TariffOverride
from strom.web.validation import PageQuery

JSON = "application/json"
SITES = "/api/v1/sites"
SSE = "text/event-stream"


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    summary: str
    tag: str
    admin: bool = True
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    ok: type[BaseModel] | None = None
    ok_status: int = 200
    media_type: str = JSON
    many: bool = False


class PayCallbackQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    amount: int = Field(description="Millisatoshi to pay.")
    comment: str | None = Field(None, description="LUD-12 comment.")
    nostr: str | None = Field(None, description="NIP-57 zap request (JSON).")
    q: str | None = Field(None, description="The price quote of the payRequest (its callback "
                          "carries it); used for one invoice while it holds.")
    rate: str | None = Field(None, description="`slow`: the charger's slow rate (the "
                             "payRequest's callback carries it).")


class PayRequestQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rate: str | None = Field(None, description="`slow`: offer the charger's cheaper slow rate "
                             "(a power limit for the session); absent: the normal rate.")


class TopupCallbackQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    amount: int = Field(description="Millisatoshi to add to the session's budget.")


class WithdrawCallbackQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    k1: str = Field(description="The k1 of the withdrawRequest.")
    pr: str = Field(description="BOLT11 invoice for exactly the refundable amount.")


class Nip05Query(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(None, description="A charge point id.")


class DevPayBody(BaseModel):
    bolt11: str


CP = "/api/v1/charge-points"
KEYS = "/api/v1/keys/{cp_id}"

PUBLIC: list[Op] = [
    Op("get", "/healthz", "Is the process up, and how are its parts", "public", False,
       ok=s.Health),
    Op("get", "/api/v1/openapi.json", "This document", "public", False),
    Op("get", "/api/v1/public/charge-points", "All charge points (contract §6)", "public",
       False, ok=s.ChargePoint, many=True),
    Op("get", "/api/v1/public/charge-points/{cp_id}", "One charge point (contract §6)", "public",
       False, ok=s.ChargePoint),
    Op("get", "/cp/{cp_id}/events", "Live charge point (server-sent events)", "public", False,
       media_type=SSE),
    Op("get", "/s/{token}", "The session (send Accept: application/json): the payer's token"
       " with the stop & refund link, the view token read-only", "public", False, ok=s.Session),
    Op("get", "/s/{token}/events", "Live session (server-sent events), payer or view token",
       "public", False,
       media_type=SSE),
    Op("get", "/.well-known/nostr.json", "NIP-05 names of the charge points' keys", "public",
       False, query=Nip05Query, ok=s.Nip05),
]

LNURL: list[Op] = [
    Op("get", "/lnurlp/{target}", "LUD-06 payRequest (target: cp id or cp-connector)", "lnurl",
       False, query=PayRequestQuery, ok=s.LnurlAnswer),
    Op("get", "/.well-known/lnurlp/{target}", "LUD-16 lightning address", "lnurl", False,
       query=PayRequestQuery, ok=s.LnurlAnswer),
    Op("get", "/lnurlp/{target}/callback", "LUD-06 invoice for `amount` msat", "lnurl", False,
       query=PayCallbackQuery, ok=s.LnurlAnswer),
    Op("get", "/topup/{token}", "LUD-06 payRequest topping up a session (top-up token: it can"
       " only pay)", "lnurl", False, ok=s.LnurlAnswer),
    Op("get", "/topup/{token}/callback", "Top-up invoice", "lnurl", False,
       query=TopupCallbackQuery, ok=s.LnurlAnswer),
    Op("get", "/s/{token}/topup", "Top-up payRequest for links printed before the top-up token"
       " (payer's token); strom no longer emits it", "lnurl", False, ok=s.LnurlAnswer),
    Op("get", "/s/{token}/topup/callback", "Top-up invoice (older links)", "lnurl", False,
       query=TopupCallbackQuery, ok=s.LnurlAnswer),
    Op("get", "/lnurlw/{token}", "LUD-03 withdrawRequest: stop and refund", "lnurl", False,
       ok=s.LnurlAnswer),
    Op("get", "/lnurlw/{token}/callback", "LUD-03 callback: pay the refund", "lnurl", False,
       query=WithdrawCallbackQuery, ok=s.LnurlAnswer),
    Op("get", "/reserve/{target}", "LUD-06 payRequest for a reservation fee (chargers with the"
       " Reservation profile)", "lnurl", False, ok=s.LnurlAnswer),
    Op("get", "/reserve/{target}/callback", "Reservation fee invoice", "lnurl", False,
       query=TopupCallbackQuery, ok=s.LnurlAnswer),
    Op("post", "/s/{token}/cancel-reservation", "Cancel the payer's reservation (payer's token"
       " only)", "lnurl", False, ok=s.Session),
]

ADMIN: list[Op] = [
    Op("get", CP, "Charge points with live status, sessions and takings", "charge points",
       query=PageQuery, ok=s.ChargePointPage),
    Op("post", CP, "Register a charge point (creates its nostr key)", "charge points",
       body=ChargePointCreate, ok=s.AdminChargePoint, ok_status=201),
    Op("get", CP + "/{cp_id}", "One charge point", "charge points", ok=s.AdminChargePoint),
    Op("patch", CP + "/{cp_id}", "Edit name, location, password or tariff override",
       "charge points", body=ChargePointUpdate, ok=s.AdminChargePoint),
    Op("delete", CP + "/{cp_id}", "Remove a charge point and its key", "charge points",
       ok_status=204),
    *[Op("post", f"/api/v1/commands/{{cp_id}}/{name}", f"Operator command {name} to the charger",
         "commands", body=body, ok=s.CommandResult) for name, (_, body) in COMMANDS.items()],
    Op("get", "/api/v1/firmware", "Firmware files uploaded", "firmware"),
    Op("post", "/api/v1/firmware", "Upload a firmware file: the raw body (`?name=`) or the file"
       " part of a multipart form; at most `[files] firmware_max_bytes` (413)", "firmware",
       query=UploadQuery, ok_status=201),
    Op("get", "/api/v1/firmware/updates", "Firmware updates sent, with the charger's status"
       " notifications", "firmware", query=ListQuery),
    Op("post", "/api/v1/firmware/updates", "Send a firmware file to a charger through a"
       " one-time link (UpdateFirmware, or SignedUpdateFirmware with a signature)", "firmware",
       body=UpdateBody, ok_status=201),
    Op("get", "/api/v1/diagnostics", "Diagnostics and log requests, with the uploaded files",
       "firmware", query=ListQuery),
    Op("post", "/api/v1/diagnostics", "Ask a charger to upload its diagnostics (GetDiagnostics)"
       " or a log (GetLog) to strom", "firmware", body=DiagnosticsBody, ok_status=201),
    Op("get", "/api/v1/diagnostics/{diagnostics_id}", "One diagnostics request", "firmware"),
    Op("get", "/api/v1/diagnostics/{diagnostics_id}/file", "The file the charger uploaded",
       "firmware", media_type="application/octet-stream"),
    Op("get", CP + "/{cp_id}/security-events", "The charger's SecurityEventNotifications,"
       " newest first", "charge points", query=ListQuery),
    Op("get", "/api/v1/certificates", "Chargers' certificate signing requests (SignCertificate)",
       "firmware", query=ListQuery),
    Op("post", "/api/v1/certificates/{request_id}/signed", "Send the chain the operator's CA"
       " signed for a pending request to its charger (CertificateSigned)", "firmware",
       body=SignedBody, ok_status=201),
    Op("get", "/api/v1/sessions", "Sessions, newest first", "sessions", query=SessionsQuery,
       ok=s.SessionPage),
    Op("get", "/api/v1/sessions/{session_id}", "One session", "sessions", ok=s.Session),
    Op("post", "/api/v1/sessions/{session_id}/stop", "Stop a session (refund stays claimable)",
       "sessions", ok=s.Session),
    Op("get", "/api/v1/tariffs", "Default tariff and each charge point's", "tariffs",
       query=PageQuery, ok=s.TariffPage),
    Op("get", "/api/v1/tariffs/{cp_id}", "A charge point's tariff and override", "tariffs",
       ok=s.TariffOfChargePoint),
    Op("put", "/api/v1/tariffs/{cp_id}", "Replace the override ({} clears it)", "tariffs",
       body=TariffOverride, ok=s.TariffOfChargePoint),
    Op("delete", "/api/v1/tariffs/{cp_id}", "Clear the override", "tariffs",
       ok=s.TariffOfChargePoint),
    Op("post", "/api/v1/tariffs/quotes/cancel", "End every open price quote", "tariffs",
       ok=s.QuotesCancelled),
    Op("get", SITES, "Sites, their limits and each running session's share", "sites",
       ok=s.SiteList),
    Op("get", SITES + "/{site_id}", "One site", "sites", ok=s.Site),
    Op("put", SITES + "/{site_id}", "Define a site or change its limit; re-balances it", "sites", body=SiteBody, ok=s.Site),
    Op("delete", SITES + "/{site_id}", "Remove a site (limits and caps lifted)", "sites",
       ok_status=204),
    Op("put", SITES + "/{site_id}/chargers/{cp_id}", "Put a charger in the site, with its own"
       " cap or none; re-balances", "sites", body=SiteChargerBody, ok=s.Site),
    Op("delete", SITES + "/{site_id}/chargers/{cp_id}", "Take a charger out of the site",
       "sites", ok_status=204),
    Op("get", "/api/v1/keys", "Nostr keys (public parts only)", "keys", query=PageQuery,
       ok=s.KeyPage),
    Op("get", KEYS, "A charger's npub, and what rotating would change", "keys", ok=s.KeyChange),
    Op("post", KEYS + "/generate", "Generate a key", "keys", body=GenerateBody, ok=s.KeyChange,
       ok_status=201),
    Op("post", KEYS + "/import", "Import nsec, hex or ncryptsec", "keys", body=ImportBody,
       ok=s.KeyChange, ok_status=201),
    Op("post", KEYS + "/encrypt", "Encrypt the key at rest (NIP-49)", "keys", body=EncryptBody,
       ok=s.KeyChange),
    Op("post", KEYS + "/rotate", "Replace the key (a new nostr identity)", "keys",
       body=RotateBody, ok=s.KeyChange),
    Op("get", "/api/v1/ledger", "Money summary and today's takings", "ledger",
       ok=s.LedgerSummary),
    Op("get", "/api/v1/ledger/check", "Verify the money invariant (409 when broken)", "ledger",
       ok=s.LedgerReport),
    Op("get", "/api/v1/cards", "Owner RFID cards (local list)", "cards", query=PageQuery,
       ok=c.CardPage),
    Op("post", "/api/v1/cards", "Register a card: free or billed to an account", "cards",
       body=c.CardCreate, ok=c.Card, ok_status=201),
    Op("get", "/api/v1/cards/{id_tag}", "One card", "cards", ok=c.Card),
    Op("delete", "/api/v1/cards/{id_tag}", "Remove a card (chargers are told)", "cards",
       ok_status=204),
    Op("get", "/api/v1/card-accounts", "Prepaid operator accounts", "cards", query=PageQuery,
       ok=c.CardAccountPage),
    Op("post", "/api/v1/card-accounts", "Open a prepaid account", "cards",
       body=c.AccountCreate, ok=c.CardAccount, ok_status=201),
    Op("get", "/api/v1/card-accounts/{account_id}", "One account", "cards", ok=c.CardAccount),
    Op("post", "/api/v1/card-accounts/{account_id}/adjust", "Top up or take back", "cards",
       body=c.AccountAdjust, ok=c.CardAccount),
    Op("get", "/api/v1/card-sessions", "Sessions started by cards, newest first", "cards",
       query=PageQuery, ok=c.CardSessionPage),
    Op("get", "/api/v1/local-list", "The card list's version and each charger's", "cards",
       ok=c.LocalList),
    Op("get", "/api/v1/ocpi/parties", "OCPI eMSP parties (never a token)", "ocpi",
       ok=o.PartyList),
    Op("post", "/api/v1/ocpi/parties", "Issue a token A for a new eMSP (shown once)", "ocpi",
       body=o.PartyCreate, ok=o.PartyIssued, ok_status=201),
    Op("delete", "/api/v1/ocpi/parties/{party_id}", "Unregister a party: its tokens stop",
       "ocpi", ok_status=204),
    Op("get", "/api/v1/stream", "Live chargers, sessions and log lines (server-sent events)",
       "live", query=StreamQuery, media_type=SSE),
    Op("post", "/api/v1/dev/pay", "Dev wallet: pay or settle an invoice (loopback only)", "dev",
       body=DevPayBody, ok=s.DevPayment),
]

OPERATIONS: list[Op] = [*PUBLIC, *LNURL, *ADMIN]
