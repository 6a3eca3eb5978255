"""Admin REST: `GET /api/v1/ledger` — the money summary (the full check is `/ledger/check`)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from strom.lightning.wallet import WalletError
from strom.services import Services
from strom.web.admin_views import earned_since, start_of_today
from strom.web.auth import require_admin, services


async def session_totals(svc: Services) -> dict[str, int]:
    """Sums over all sessions of the columns the money invariant ties together."""
    row = await svc.db.fetchone(
        "SELECT COUNT(*) AS sessions, COALESCE(SUM(paid_msat), 0) AS received,"
        " COALESCE(SUM(consumed_msat), 0) AS consumed, COALESCE(SUM(refunded_msat), 0) AS refunded,"
        " COALESCE(SUM(forfeited_msat), 0) AS forfeited FROM sessions")
    assert row is not None
    totals = {"sessions": row["sessions"], "received_msat": row["received"],
              "consumed_msat": row["consumed"], "refunded_msat": row["refunded"],
              "forfeited_msat": row["forfeited"]}
    totals["refundable_msat"] = (totals["received_msat"] - totals["consumed_msat"]
                                 - totals["refunded_msat"] - totals["forfeited_msat"])
    return totals


async def ledger_summary(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    since = start_of_today()
    earned = await earned_since(svc, since)
    balance: int | None = None
    if svc.wallet is not None:
        try:
            balance = await svc.wallet.balance()
        except WalletError:
            balance = None
    body: dict[str, Any] = {
        **await session_totals(svc), "today_since": since,
        "earned_today_msat": sum(earned.values()), "earned_today_by_cp": earned,
        "wallet_balance_msat": balance,
    }
    return JSONResponse(body)


routes = [Route("/api/v1/ledger", ledger_summary)]
