"""NIP-11: the relay information document, served on the websocket port to an HTTP GET with
`Accept: application/nostr+json`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from relay.limits import Limits
from strom import __version__

NOSTR_JSON = "application/nostr+json"
SUPPORTED_NIPS = [1, 9, 11, 33, 40, 42, 45]


@dataclass(frozen=True, slots=True)
class RelayInfo:
    """What the relay says about itself."""

    name: str
    description: str
    pubkey: str | None
    contact: str | None
    restricted_writes: bool


def information_document(info: RelayInfo, limits: Limits) -> dict[str, Any]:
    """The NIP-11 JSON object."""
    document: dict[str, Any] = {
        "name": info.name,
        "description": info.description,
        "software": "strom",
        "version": __version__,
        "supported_nips": SUPPORTED_NIPS,
        "limitation": {
            "max_message_length": limits.max_message_length,
            "max_subscriptions": limits.max_subscriptions,
            "max_filters": limits.max_filters,
            "max_limit": limits.max_limit,
            "default_limit": limits.default_limit,
            "max_subid_length": limits.max_subid_length,
            "created_at_upper_limit": limits.created_at_upper_limit,
            "auth_required": False,
            "payment_required": False,
            "restricted_writes": info.restricted_writes,
        },
    }
    if info.pubkey:
        document["pubkey"] = info.pubkey
    if info.contact:
        document["contact"] = info.contact
    return document


def http_response(connection: ServerConnection, request: Request,
                  document: dict[str, Any]) -> Response | None:
    """A response for plain HTTP requests; None lets a websocket upgrade go ahead."""
    if NOSTR_JSON in request.headers.get("Accept", ""):
        response = connection.respond(HTTPStatus.OK, json.dumps(document))
        # websockets headers are a multidict: setting would add a second Content-Type.
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = NOSTR_JSON
        # NIP-11: browsers on other origins must be able to read it.
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Headers"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "GET"
        return response
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return connection.respond(HTTPStatus.OK, "This is a nostr relay: connect with a nostr "
                                  "client, or ask with Accept: application/nostr+json.\n")
    return None
