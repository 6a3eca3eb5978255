"""Response helpers shared by the route modules.

Every JSON body and SSE frame goes through `json_text`: strict JSON (`allow_nan=False`) always.
A non-finite number that slipped past the edges (or is stored from before they checked) is
sent as `null` with a log line, never as `NaN`/`Infinity` and never as a 500.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from starlette.responses import JSONResponse as _StarletteJSONResponse

log = logging.getLogger(__name__)


def finite(data: Any) -> Any:
    """`data` with every NaN/±inf float (in dicts, lists and tuples) replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite(value) for value in data]
    return data


def json_text(data: Any, **options: Any) -> str:
    """Strict JSON text of `data`; non-finite numbers become null (logged)."""
    try:
        return json.dumps(data, allow_nan=False, **options)
    except ValueError:
        log.warning("a non-finite number in a JSON answer was sent as null")
        return json.dumps(finite(data), allow_nan=False, **options)


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSONResponse that answers null for a non-finite number instead of a 500."""

    def render(self, content: Any) -> bytes:
        return json_text(content, ensure_ascii=False, indent=None,
                         separators=(",", ":")).encode("utf-8")


def lnurl_refusal(reason: Exception) -> JSONResponse:
    """A LUD-06 error whose `reason` is the refusal's own message (a use case's or a parser's)."""
    return lnurl_response({"status": "ERROR", "reason": str(reason)})


def lnurl_response(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """LNURL JSON: wallets fetch it cross-origin, and it must never be cached."""
    return JSONResponse(body, status_code=status_code,
                        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"})
