"""Admin REST: `GET /api/v1/ledger` — the money summary (the full check is `/ledger/check`)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from strom.lightning.wallet import WalletError
from strom.web.admin_views import start_of_today
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse


async def ledger_summary(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    since = start_of_today()
    earned = await svc.sessions.earned_since(since)
    balance: int | None = None
    try:
        balance = await svc.wallet.balance()
    except WalletError:
        balance = None
    body: dict[str, Any] = {
        **await svc.sessions.totals(), "today_since": since,
        "earned_today_msat": sum(earned.values()), "earned_today_by_cp": earned,
        "wallet_balance_msat": balance,
    }
    return JSONResponse(body)


routes = [Route("/api/v1/ledger", ledger_summary)]
