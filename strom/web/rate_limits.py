"""Per-client rate limits on the unauthenticated LNURL callbacks that make invoices.

Each callback writes a session and asks the wallet for an invoice, so a flood of them fills
the store and loads the wallet. Every client address has a token bucket
(`[lnurl] callbacks_per_minute`, `callback_burst`); past it the answer is a LUD-06 error. The
client address is the peer's; behind a reverse proxy named in `[http] trusted_proxies` the HTTP
server has already replaced it with the address that proxy forwarded (from nobody else).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from strom.config import Settings
from strom.lnurl.errors import LnurlError
from strom.ratelimit import KeyedBuckets
from strom.web.responses import lnurl_response

Handler = Callable[[Request], Awaitable[Response]]


def invoice_buckets(settings: Settings) -> KeyedBuckets:
    """The buckets for `create_web_app` to keep in `app.state.invoice_buckets`."""
    lnurl = settings.lnurl
    return KeyedBuckets(lnurl.callbacks_per_minute / 60.0, lnurl.callback_burst)


def invoice_rate_limited(handler: Handler) -> Handler:
    """Answer a LUD-06 error instead of `handler` when the client asks too often."""

    @functools.wraps(handler)
    async def limited(request: Request) -> Response:
        buckets: KeyedBuckets = request.app.state.invoice_buckets
        settings: Settings = request.app.state.services.settings
        if not buckets.take(request.client.host if request.client else "?"):
            per_minute = settings.lnurl.callbacks_per_minute
            # HTTP 200 like every LUD-06 error: wallets (the lnurl library among them) show
            # the reason only then; a 429 would reach the driver as "client error".
            answer = lnurl_response(LnurlError(
                f"too many payment requests from your address (at most {per_minute:g} a "
                "minute); wait a minute and try again").to_json())
            answer.headers["Retry-After"] = "60"
            return answer
        return await handler(request)

    return limited
