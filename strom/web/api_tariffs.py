"""Admin REST: `/api/v1/tariffs` (default and per charger) and `/api/v1/tariffs/{cp_id}`.

The default tariff comes from `[tariff]` in strom.toml and is read-only here; each charge
point may override any price of it, stored with the charge point. A changed override ends
the charge point's open price quotes (see `TariffService.quoted`);
`POST /api/v1/tariffs/quotes/cancel` ends all of them (e.g. before a price change in
strom.toml and a restart, or when a feed is known to be wrong).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from strom.container import Services
from strom.store.charge_points import ChargerRecord
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse
from strom.web.validation import InvalidInput, PageQuery, Strict, Whole, page, read_body, read_query

MAX_MSAT = 10**12  # 10 BTC: far above any charge, far below SQLite's integer range


class TariffOverride(Strict):
    """Prices of one charge point that differ from the default; absent keys follow it."""

    price_msat_per_kwh: Whole | None = Field(None, ge=0, le=MAX_MSAT)
    session_fee_msat: Whole | None = Field(None, ge=0, le=MAX_MSAT)
    price_msat_per_minute: Whole | None = Field(None, ge=0, le=MAX_MSAT)
    grace_minutes: Whole | None = Field(None, ge=0, le=100_000)
    min_prepay_msat: Whole | None = Field(None, ge=1000, le=MAX_MSAT)
    max_prepay_msat: Whole | None = Field(None, ge=1000, le=MAX_MSAT)
    # The slow rate (`[tariff.slow_rate]`) of this charger: 0 W turns it off here.
    slow_max_power_w: Whole | None = Field(None, ge=0, le=10_000_000)
    slow_price_msat_per_kwh: Whole | None = Field(None, ge=0, le=MAX_MSAT)
    slow_discount_percent: Whole | None = Field(None, ge=0, le=100)

    @model_validator(mode="after")
    def _min_below_max(self) -> TariffOverride:
        if (self.min_prepay_msat is not None and self.max_prepay_msat is not None
                and self.min_prepay_msat > self.max_prepay_msat):
            raise ValueError("min_prepay_msat must not exceed max_prepay_msat")
        return self

    def stored(self) -> dict[str, int]:
        """The override as kept with the charge point: only the keys that were given."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


def default_prices(svc: Services) -> dict[str, int]:
    """The `[tariff]` prices every charge point starts from."""
    defaults = svc.settings.tariff.model_dump()
    return {k: int(defaults[k]) for k in TariffOverride.model_fields if k in defaults}


def check_override(svc: Services, override: TariffOverride) -> dict[str, int]:
    """The stored form of `override`, or 422 if together with the default it cannot be paid."""
    merged = {**default_prices(svc), **override.stored()}
    problem = None
    if merged["min_prepay_msat"] > merged["max_prepay_msat"]:
        problem = "min_prepay_msat would exceed max_prepay_msat"
    elif merged["session_fee_msat"] + 1000 > merged["max_prepay_msat"]:
        problem = "the session fee leaves nothing to charge with below max_prepay_msat"
    if problem:
        raise InvalidInput([{"loc": ["body", "tariff"], "msg": problem}])
    return override.stored()


def tariff_json(svc: Services, cp: ChargerRecord) -> dict[str, Any]:
    return {"cp_id": cp.id, "override": cp.tariff, "current": svc.tariffs.current(cp).to_json()}


async def _charge_point(request: Request) -> tuple[Services, ChargerRecord]:
    require_admin(request)
    svc = services(request)
    cp = await svc.charge_points.get(request.path_params["cp_id"])
    if cp is None:
        raise HTTPException(404, "unknown charge point")
    return svc, cp


async def list_tariffs(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    query = read_query(request, PageQuery)
    cps = await svc.charge_points.list()
    items = [tariff_json(svc, cp) for cp in cps[query.offset:query.offset + query.limit]]
    # The operator's view: with the feeds' errors and sources, which drivers never see.
    return JSONResponse({"default": default_prices(svc), "mode": _mode(svc),
                         "feeds": svc.tariffs.status().to_json(),
                         **page(items, len(cps), query)})


def _mode(svc: Services) -> str:
    return str(getattr(svc.settings.tariff, "mode", "static"))


async def get_tariff(request: Request) -> JSONResponse:
    svc, cp = await _charge_point(request)
    return JSONResponse(tariff_json(svc, cp))


async def put_tariff(request: Request) -> JSONResponse:
    """Replace the charge point's override (an empty object clears it)."""
    svc, cp = await _charge_point(request)
    stored = check_override(svc, await read_body(request, TariffOverride))
    await svc.charge_points.update(cp.id, tariff=stored or None)
    updated = await svc.charge_points.get(cp.id)
    assert updated is not None
    return JSONResponse(tariff_json(svc, updated))


async def delete_tariff(request: Request) -> JSONResponse:
    svc, cp = await _charge_point(request)
    await svc.charge_points.update(cp.id, tariff=None)
    updated = await svc.charge_points.get(cp.id)
    assert updated is not None
    return JSONResponse(tariff_json(svc, updated))


async def cancel_quotes(request: Request) -> JSONResponse:
    """End every open price quote: wallets that loaded a price must load it again."""
    require_admin(request)
    svc = services(request)
    return JSONResponse({"cancelled": svc.tariffs.cancel_quotes()})


routes = [
    Route("/api/v1/tariffs/quotes/cancel", cancel_quotes, methods=["POST"]),
    Route("/api/v1/tariffs", list_tariffs),
    Route("/api/v1/tariffs/{cp_id}", get_tariff),
    Route("/api/v1/tariffs/{cp_id}", put_tariff, methods=["PUT"]),
    Route("/api/v1/tariffs/{cp_id}", delete_tariff, methods=["DELETE"]),
]
