"""Admin REST: `/api/v1/keys` — the charge points' nostr keys, public parts only.

Generate, import (nsec, hex or ncryptsec), encrypt at rest (NIP-49) and rotate. No answer ever
carries a secret key, and a rejected body is never echoed. Without a `password` in the body,
encryption uses the server's `$STROM_KEY_PASSWORD` (the one it opens the keys with at start).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from strom.container import Services
from strom.errors import UserError
from strom.keys import (
    ROTATE_WARNING,
    KeyConflict,
    KeyInfo,
    KeyMissing,
    encrypt_key,
    generate_key,
    import_key,
    key_info,
    key_infos,
    keys_path,
    rotate_key,
)
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse
from strom.web.validation import InvalidInput, PageQuery, Strict, page, read_body, read_query

T = TypeVar("T")



def _password_field() -> Any:
    return Field(None, min_length=1, max_length=1024,
                 description="NIP-49 password; default: the server's STROM_KEY_PASSWORD.")


class GenerateBody(Strict):
    encrypt: bool = False
    password: str | None = _password_field()


class ImportBody(Strict):
    secret: str = Field(min_length=1, max_length=512,
                        description="nsec1…, 64 hex digits, or ncryptsec1… (needs password).")
    encrypt: bool = False
    password: str | None = _password_field()
    replace: bool = False


class EncryptBody(Strict):
    password: str | None = _password_field()


class RotateBody(Strict):
    confirm: Literal[True] = Field(description="Must be true: the charger gets a new identity.")
    password: str | None = _password_field()


def _path(svc: Services) -> Path:
    return keys_path(svc.data_dir, svc.settings.nostr.keys_file)


def key_json(info: KeyInfo, known: bool) -> dict[str, Any]:
    return {"cp_id": info.cp_id, "npub": info.npub, "pubkey": info.pubkey_hex,
            "encrypted": info.encrypted, "charge_point_exists": known}


def _password(given: str | None, needed: bool) -> str | None:
    if not needed:
        return None
    password = given or os.environ.get("STROM_KEY_PASSWORD")
    if not password:
        raise InvalidInput([{"loc": ["body", "password"],
                             "msg": "give a password (or start strom with STROM_KEY_PASSWORD set)"}])
    return password


async def _run(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Key files and NIP-49's scrypt off the event loop; key errors as HTTP answers."""
    try:
        return await asyncio.to_thread(func, *args, **kwargs)
    except KeyMissing as exc:
        raise HTTPException(404, str(exc)) from None
    except KeyConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except UserError as exc:
        raise HTTPException(422, str(exc)) from None


async def _cp_id(request: Request) -> tuple[Services, str]:
    require_admin(request)
    svc = services(request)
    cp_id = request.path_params["cp_id"]
    if not await svc.charge_points.exists(cp_id):
        raise HTTPException(404, "unknown charge point")
    return svc, cp_id


async def _answer(svc: Services, cp_id: str, status_code: int = 200,
                  **extra: Any) -> JSONResponse:
    info = await _run(key_info, _path(svc), cp_id)
    return JSONResponse({**key_json(info, True), **extra}, status_code=status_code)


async def list_keys(request: Request) -> JSONResponse:
    require_admin(request)
    svc = services(request)
    query = read_query(request, PageQuery)
    infos = await _run(key_infos, _path(svc))
    known = {cp.id for cp in await svc.charge_points.list()}
    shown = infos[query.offset:query.offset + query.limit]
    return JSONResponse(page([key_json(i, i.cp_id in known) for i in shown], len(infos), query))


async def get_key(request: Request) -> JSONResponse:
    """The charger's npub (the export: public key only)."""
    require_admin(request)
    svc = services(request)
    cp_id = request.path_params["cp_id"]
    info = await _run(key_info, _path(svc), cp_id)
    known = await svc.charge_points.exists(cp_id)
    return JSONResponse({**key_json(info, known),
                         "rotate_warning": ROTATE_WARNING.format(cp_id=cp_id)})


async def generate(request: Request) -> JSONResponse:
    svc, cp_id = await _cp_id(request)
    body = await read_body(request, GenerateBody)
    password = _password(body.password, body.encrypt or body.password is not None)
    await _run(generate_key, _path(svc), cp_id, password=password)
    return await _answer(svc, cp_id, 201)


async def import_(request: Request) -> JSONResponse:
    svc, cp_id = await _cp_id(request)
    body = await read_body(request, ImportBody)
    sealed = body.secret.strip().startswith("ncryptsec1")
    password = _password(body.password, body.encrypt or sealed)
    await _run(import_key, _path(svc), cp_id, body.secret, password=password,
               encrypt=body.encrypt or body.password is not None, replace=body.replace)
    return await _answer(svc, cp_id, 201)


async def encrypt(request: Request) -> JSONResponse:
    svc, cp_id = await _cp_id(request)
    body = await read_body(request, EncryptBody)
    password = _password(body.password, True)
    assert password is not None
    await _run(encrypt_key, _path(svc), cp_id, password)
    return await _answer(svc, cp_id)


async def rotate(request: Request) -> JSONResponse:
    svc, cp_id = await _cp_id(request)
    body = await read_body(request, RotateBody)
    old = await _run(key_info, _path(svc), cp_id)
    password = _password(body.password, old.encrypted or body.password is not None)
    rotation = await _run(rotate_key, _path(svc), cp_id, password=password)
    return await _answer(svc, cp_id, previous_npub=rotation.old_npub, warning=rotation.warning)


routes = [
    Route("/api/v1/keys", list_keys),
    Route("/api/v1/keys/{cp_id}", get_key),
    Route("/api/v1/keys/{cp_id}/generate", generate, methods=["POST"]),
    Route("/api/v1/keys/{cp_id}/import", import_, methods=["POST"]),
    Route("/api/v1/keys/{cp_id}/encrypt", encrypt, methods=["POST"]),
    Route("/api/v1/keys/{cp_id}/rotate", rotate, methods=["POST"]),
]
