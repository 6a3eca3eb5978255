"""Admin REST for the owner's cards (issue 21): cards, prepaid accounts, card sessions and
what each charger's local list holds. Translates only: the rules are `strom.cards`."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strom.cards.model import ACCOUNT_ID, ID_TAG, LABEL, MAX_BALANCE_MSAT, CardError
from strom.cards.service import CardService
from strom.web.auth import require_admin, services
from strom.web.responses import JSONResponse
from strom.web.schemas import PageBase
from strom.web.validation import PageQuery, Strict, Whole, page, read_body, read_query

T = TypeVar("T")


class Jsonable(Protocol):
    def to_json(self) -> dict[str, Any]: ...


_STATUS = {"invalid": 422, "unknown_account": 422, "duplicate": 409, "not_found": 404}


class CardCreate(Strict):
    id_tag: str = Field(min_length=1, max_length=20, pattern=ID_TAG.pattern,
                        description="The RFID idTag (OCPP CiString20: printable ASCII, no"
                        " spaces); compared case-insensitively.")
    rule: Literal["free", "account"] = Field(description="`free`, or `account`: billed to a"
                                             " prepaid account at the charger's tariff.")
    account: str | None = Field(None, max_length=48, description="The account (rule account).")
    label: str = Field("", max_length=100, pattern=LABEL.pattern,
                       description="Whose card it is (family, fleet, staff).")


class AccountCreate(Strict):
    id: str = Field(pattern=ACCOUNT_ID.pattern, description="1-48 letters, digits, '.', '_', '-'.")
    name: str | None = Field(None, max_length=100, pattern=LABEL.pattern)
    balance_msat: Whole = Field(0, ge=0, le=MAX_BALANCE_MSAT, description="Opening balance.")


class AccountAdjust(Strict):
    amount_msat: Whole = Field(ge=-MAX_BALANCE_MSAT, le=MAX_BALANCE_MSAT,
                               description="Positive: a top-up; negative: taken back.")
    note: str | None = Field(None, max_length=100, pattern=LABEL.pattern)


class Card(BaseModel):
    id_tag: str
    label: str
    rule: str
    account: str | None
    status: str | None = Field(description="In the local list: Accepted, or Blocked while"
                               " its account is empty.")
    list_version: int
    created_at: str


class CardPage(PageBase):
    items: list[Card]


class CardAccount(BaseModel):
    id: str
    name: str
    balance_msat: int
    created_at: str
    updated_at: str


class CardAccountPage(PageBase):
    items: list[CardAccount]


class CardSession(BaseModel):
    id: str
    kind: str = Field(description="Always `card`: no lightning payment.")
    cp_id: str
    connector_id: int
    transaction_id: int
    id_tag: str
    rule: str
    account: str | None
    state: str = Field(description="charging, stopping or stopped.")
    energy_wh: float
    consumed_msat: int = Field(description="Drawn from the account (0 for a free card).")
    unbilled_msat: int = Field(description="Energy the account could not cover.")
    power_w: float | None
    started_at: str
    stopped_at: str | None
    stop_reason: str | None
    tariff: dict[str, Any]


class CardSessionPage(PageBase):
    items: list[CardSession]


class ChargerList(BaseModel):
    cp_id: str
    list_version: int | None = Field(description="The version the charger accepted.")
    supported: bool | None = Field(description="false: the charger has no local list.")
    detail: str | None
    checked_at: str


class LocalList(BaseModel):
    version: int = Field(description="The current version of the card list.")
    chargers: list[ChargerList]


def _cards(request: Request) -> CardService:
    require_admin(request)
    return services(request).cards


async def _decided(work: Awaitable[T]) -> T:
    """What the card rules answered, or their refusal as 404 / 409 / 422 with its reason."""
    try:
        return await work
    except CardError as exc:
        raise HTTPException(_STATUS.get(exc.kind, 422), str(exc)) from None


def _paged(request: Request, every: Sequence[Jsonable]) -> JSONResponse:
    """One page (`?limit=&offset=`) of a whole list."""
    query = read_query(request, PageQuery)
    items = [item.to_json() for item in every[query.offset:query.offset + query.limit]]
    return JSONResponse(page(items, len(every), query))


async def list_cards(request: Request) -> JSONResponse:
    return _paged(request, await _cards(request).cards())


async def create_card(request: Request) -> JSONResponse:
    cards = _cards(request)
    body = await read_body(request, CardCreate)
    card = await _decided(cards.registry.add_card(body.id_tag, body.rule,
                                                  account_id=body.account, label=body.label))
    return JSONResponse(card.to_json(), status_code=201)


async def get_card(request: Request) -> JSONResponse:
    cards = _cards(request)
    card = await _decided(cards.registry.card(request.path_params["id_tag"]))
    return JSONResponse(card.to_json())


async def delete_card(request: Request) -> Response:
    cards = _cards(request)
    await _decided(cards.registry.remove_card(request.path_params["id_tag"]))
    return Response(status_code=204)


async def list_accounts(request: Request) -> JSONResponse:
    return _paged(request, await _cards(request).accounts())


async def create_account(request: Request) -> JSONResponse:
    cards = _cards(request)
    body = await read_body(request, AccountCreate)
    account = await _decided(cards.registry.add_account(body.id, body.name, body.balance_msat))
    return JSONResponse(account.to_json(), status_code=201)


async def get_account(request: Request) -> JSONResponse:
    cards = _cards(request)
    account = await _decided(cards.registry.account(request.path_params["account_id"]))
    return JSONResponse(account.to_json())


async def adjust_account(request: Request) -> JSONResponse:
    cards = _cards(request)
    body = await read_body(request, AccountAdjust)
    account = await _decided(cards.registry.adjust(request.path_params["account_id"],
                                              body.amount_msat, body.note))
    return JSONResponse(account.to_json())


async def list_card_sessions(request: Request) -> JSONResponse:
    cards = _cards(request)
    query = read_query(request, PageQuery)
    items, total = await cards.sessions(limit=query.limit, offset=query.offset)
    return JSONResponse(page([s.to_json() for s in items], total, query))


async def local_list(request: Request) -> JSONResponse:
    version, chargers = await _cards(request).local_lists()
    return JSONResponse({"version": version, "chargers": [c.to_json() for c in chargers]})


routes = [
    Route("/api/v1/cards", list_cards),
    Route("/api/v1/cards", create_card, methods=["POST"]),
    Route("/api/v1/cards/{id_tag}", get_card),
    Route("/api/v1/cards/{id_tag}", delete_card, methods=["DELETE"]),
    Route("/api/v1/card-accounts", list_accounts),
    Route("/api/v1/card-accounts", create_account, methods=["POST"]),
    Route("/api/v1/card-accounts/{account_id}", get_account),
    Route("/api/v1/card-accounts/{account_id}/adjust", adjust_account, methods=["POST"]),
    Route("/api/v1/card-sessions", list_card_sessions),
    Route("/api/v1/local-list", local_list),
]
