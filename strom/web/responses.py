"""Response helpers shared by the route modules."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


def lnurl_response(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """LNURL JSON: wallets fetch it cross-origin, and it must never be cached."""
    return JSONResponse(body, status_code=status_code,
                        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"})
