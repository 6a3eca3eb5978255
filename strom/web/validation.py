"""Reading REST input with pydantic: bodies, query strings and pages, with 422 field details.

Every rejection is `422 {"error": "…", "fields": [{"loc": [...], "msg": "…"}]}`. The offending
value is never echoed back: a body may carry a secret key.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request

M = TypeVar("M", bound=BaseModel)

MAX_BODY = 64 * 1024


class InvalidInput(HTTPException):
    """422 with the list of fields that are wrong and why."""

    def __init__(self, fields: list[dict[str, Any]]) -> None:
        first: dict[str, Any] = fields[0] if fields else {"loc": [], "msg": "invalid input"}
        where = ".".join(str(p) for p in first["loc"])
        super().__init__(422, f"{where}: {first['msg']}" if where else first["msg"])
        self.fields = fields


def _whole(value: Any) -> Any:
    # JSON has one number type: 5.0 is the integer 5 (JSON Schema agrees), 5.5 is not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = Annotated[int, BeforeValidator(_whole)]
"""An integer in a strict body that also takes 5.0, but neither 5.5, "5" nor true."""


class Strict(BaseModel):
    """Base of request bodies: unknown keys are an error, not silently dropped."""

    # Strict: `true` is no number and `"5"` no integer in a JSON body.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class PageQuery(BaseModel):
    """`?limit=&offset=` of every list."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(50, ge=1, le=500, description="Items per page.")
    offset: int = Field(0, ge=0, le=10**9, description="Items to skip.")


def _fields(exc: ValidationError, prefix: str) -> list[dict[str, Any]]:
    return [{"loc": [prefix, *err["loc"]], "msg": err["msg"]} for err in exc.errors()]


async def limited_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, read no further than `limit` bytes: a huge upload is refused (413), not
    stored."""
    too_large = HTTPException(413, f"body larger than {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, model: type[M]) -> M:
    """The JSON body as `model`, or 422 saying which fields are wrong (413 when too large)."""
    raw = await limited_body(request)
    try:
        return model.model_validate_json(raw if raw.strip() else b"{}")
    except ValidationError as exc:
        raise InvalidInput(_fields(exc, "body")) from None


def read_query(request: Request, model: type[M]) -> M:
    """The query string as `model` (strings coerced to the declared types), or 422."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise InvalidInput(_fields(exc, "query")) from None


def page(items: list[Any], total: int, query: PageQuery) -> dict[str, Any]:
    """The envelope of every paginated list."""
    return {"items": items, "total": total, "limit": query.limit, "offset": query.offset}
