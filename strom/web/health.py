"""`GET /healthz`: is the process up, and how are its parts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from strom.container import NostrStatus
from strom.web.auth import services
from strom.web.responses import JSONResponse


async def healthz(request: Request) -> JSONResponse:
    svc = services(request)
    nostr: NostrStatus = request.app.state.nostr
    checks: dict[str, object] = {"store": "ok",
                                 "ocpp": {"connected": svc.central_system.connected_count()}}
    if svc.relay_url is not None:
        checks["relay"] = {"url": svc.relay_url}
    if (identities := nostr.identity_count) is not None:
        # Per relay of strom's: publish counts, the last refusal (prefix and the relay's
        # words), a rest after `rate-limited:` or silence, NIP-42 state (issue 19).
        checks["nostr"] = {"identities": identities, "relays": nostr.relay_states()}
    if svc.tls is not None:
        checks["tls"] = svc.tls.status()
    info = await svc.wallet.info()
    checks["lightning"] = {"backend": info.backend, "reachable": info.reachable}
    healthy = all(not isinstance(v, dict) or v.get("reachable", True) for v in checks.values())
    return JSONResponse({"status": "ok" if healthy else "degraded", "demo": svc.demo,
                         "checks": checks})


routes = [Route("/healthz", healthz)]
