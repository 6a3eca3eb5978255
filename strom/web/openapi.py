"""`GET /api/v1/openapi.json`: the OpenAPI 3.1 document of strom's whole HTTP API.

Built from `strom.web.openapi_ops` and the pydantic models the routes validate with. Admin
operations carry the bearer security requirement; everything else is public.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.routing import Route

from strom import __version__
from strom.web import schemas
from strom.web.auth import services
from strom.web.openapi_ops import JSON, OPERATIONS, SSE, Op
from strom.web.responses import JSONResponse

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)}")


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`X | None` of a query parameter: absent means None, so the parameter itself is an X."""
    options = schema.get("anyOf")
    if options and any(o.get("type") == "null" for o in options):
        kept = [o for o in options if o.get("type") != "null"]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}
    return schema


def _parameters(op: Op, defs: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(op.path)]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF)
        defs.update(schema.pop("$defs", {}))
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            prop = _without_null(dict(prop))
            params.append({"name": name, "in": "query", "required": name in required,
                           "description": prop.pop("description", ""), "schema": prop})
    return params


def _ok(op: Op) -> dict[str, Any]:
    if op.ok_status == 204:
        return {"description": "Done, nothing to say."}
    if op.media_type == SSE:
        return {"description": "A stream of server-sent events.",
                "content": {SSE: {"schema": {"type": "string"}}}}
    if op.media_type != JSON:
        return {"description": "The file.",
                "content": {op.media_type: {"schema": {"type": "string", "format": "binary"}}}}
    schema: dict[str, Any] = _ref(op.ok) if op.ok else {"type": "object"}
    if op.many:
        schema = {"type": "array", "items": schema}
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if op.path == "/s/{token}":
        content["text/html"] = {"schema": {"type": "string"}}
    return {"description": "OK", "content": content}


def _operation(op: Op, defs: dict[str, Any]) -> dict[str, Any]:
    error = {"content": {JSON: {"schema": _ref(schemas.Error)}}}
    operation: dict[str, Any] = {
        "operationId": f"{op.method}_" + re.sub(r"\W+", "_", op.path).strip("_"),
        "summary": op.summary, "tags": [op.tag], "parameters": _parameters(op, defs),
        "responses": {str(op.ok_status): _ok(op),
                      "default": {"description": "An error, with its reason.", **error}},
        "security": [{"bearerAuth": []}] if op.admin else [],
    }
    if op.admin:
        operation["responses"]["401"] = {"description": "Missing or wrong admin token.", **error}
    if op.body is not None:
        required = bool(op.body.model_json_schema().get("required"))
        operation["requestBody"] = {"required": required,
                                    "content": {JSON: {"schema": _ref(op.body)}}}
    return operation


def _models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"Error": schemas.Error}
    for op in OPERATIONS:
        for model in (op.body, op.ok):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


@functools.lru_cache(maxsize=8)
def build_document(server_url: str) -> dict[str, Any]:
    """The document, with `server_url` as its server."""
    _, top = models_json_schema([(m, "validation") for m in _models()], ref_template=REF)
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, defs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "strom", "version": __version__,
                 "description": "Sell EV charging for bitcoin over Lightning: public, LNURL and "
                                "admin API. Admin routes need `Authorization: Bearer <token>` "
                                "from `<data-dir>/admin.token`."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": defs, "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "The token in <data-dir>/admin.token."}}},
    }


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(build_document(services(request).settings.public_url))


routes = [Route("/api/v1/openapi.json", openapi_json)]
