"""The ASGI application: every route module contributes its `routes`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from strom.container import NOSTR_OFF, NostrStatus, Services
from strom.web import (
    acme_challenge,
    api_cards,
    api_charge_points,
    api_commands,
    api_firmware,
    api_keys,
    api_ledger,
    api_ocpi,
    api_sessions,
    api_sites,
    api_stream,
    api_tariffs,
    charger_files,
    demo_pay,
    dev_pay,
    health,
    live,
    lnurl_pay,
    lnurl_withdraw,
    nip05,
    ocpi,
    ocpi_lightning,
    openapi,
    pages,
    public_api,
    reservations,
    session_page,
)
from strom.web.errors import CatchAll, http_error
from strom.web.rate_limits import invoice_buckets


def create_web_app(services: Services, nostr: NostrStatus = NOSTR_OFF) -> Starlette:
    """The web on the whole container; `nostr`: what it shows of the bots (`/healthz`)."""
    routes = [*health.routes, *lnurl_pay.routes, *lnurl_withdraw.routes, *session_page.routes,
              *api_sessions.routes, *public_api.routes, *dev_pay.routes, *demo_pay.routes,
              *live.routes, *nip05.routes, *api_charge_points.routes, *api_commands.routes, *api_keys.routes,
              *api_tariffs.routes, *api_ledger.routes, *api_cards.routes, *api_ocpi.routes,
              *api_stream.routes, *openapi.routes, *api_sites.routes, *ocpi.routes,
              *ocpi_lightning.routes, *reservations.routes,
              *acme_challenge.routes, *api_firmware.routes, *charger_files.routes,
              *pages.routes]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error},
                    middleware=[Middleware(CatchAll)])
    app.state.services = services
    app.state.nostr = nostr
    app.state.invoice_buckets = invoice_buckets(services.settings)
    return app
