"""NIP-05: `/.well-known/nostr.json?name=ID` names each charge point's key."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from strom.web.auth import services
from strom.web.responses import JSONResponse


async def nostr_json(request: Request) -> JSONResponse:
    svc = services(request)
    keys = svc.keyring.all_pubkeys()
    name = request.query_params.get("name")
    if name is not None:
        keys = {name: keys[name]} if name in keys else {}
    relays = [svc.relay_url] if svc.relay_url else []
    relays += svc.settings.nostr.relays
    return JSONResponse({"names": keys, "relays": {pk: relays for pk in keys.values()}},
                        headers={"Access-Control-Allow-Origin": "*"})


routes = [Route("/.well-known/nostr.json", nostr_json)]
