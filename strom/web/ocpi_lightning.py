"""The `lightning` custom OCPI module (advertised in strom's version details): an eMSP
prepays a session with a BOLT11 invoice from strom and gets the unused amount back to an
invoice it supplies.

It is a driver's path through the same use cases, not a copy: the invoice comes from
`use_cases.checkout.pay` (as an LNURL payment's), paying it starts the charger through the
session service, and the refund is `use_cases.withdrawals` (stop, a one-time k1 for exactly
what is refundable, paid once), the LNURL-withdraw rules. The session's payer token is the
eMSP's capability for it (view, stop, refund), as a driver's link is; here it is used only
together with the party's token C.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from strom.ocpi import VERSION
from strom.ocpi.envelope import INVALID_PARAMETERS, UNKNOWN_LOCATION, OcpiError
from strom.ocpi.locations import parse_evse_uid
from strom.ocpi.parties import Caller
from strom.sessions.checkout import AmountRefused, Order, UnknownCharger
from strom.sessions.payer_stop import SessionToken
from strom.sessions.refusals import Refused
from strom.views import session_json
from strom.web.auth import services
from strom.web.ocpi import endpoint, read_object

REFUSED = 2000  # well formed, but the use case refused it now (why: the message)


async def create(request: Request, caller: Caller) -> Any:
    """`{location_id, evse_uid, amount_msat}` → a session waiting for its invoice."""
    svc = services(request)
    body = await read_object(request)
    uid, amount = body.get("evse_uid"), body.get("amount_msat")
    parsed = parse_evse_uid(uid) if isinstance(uid, str) else None
    if parsed is None or parsed[0] != body.get("location_id"):
        raise OcpiError(UNKNOWN_LOCATION, "unknown location or EVSE", 404)
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise OcpiError(INVALID_PARAMETERS, "amount_msat: a whole number of msat is required")
    try:
        # The EVSE uid is the charger's LNURL target name of that connector (`{cp}-{n}`).
        invoiced = await svc.use_cases.checkout.pay(Order(
            target=str(uid), amount_msat=amount,
            comment=f"OCPI eMSP {caller.party.country_code}/{caller.party.party_id}"))
    except UnknownCharger:
        raise OcpiError(UNKNOWN_LOCATION, "unknown location or EVSE", 404) from None
    except AmountRefused as exc:
        raise OcpiError(INVALID_PARAMETERS, f"amount_msat: {exc}") from None
    except Refused as exc:
        raise OcpiError(REFUSED, str(exc)) from None
    pending = invoiced.pending
    return {"session_token": pending.session.token, "bolt11": pending.bolt11,
            "payment_hash": pending.payment_hash, "amount_msat": amount,
            "session": session_json(svc, pending.session)}


async def show(request: Request, caller: Caller) -> Any:
    svc = services(request)
    session = await svc.sessions.by_token(request.path_params["token"])
    if session is None:
        raise OcpiError(INVALID_PARAMETERS, "unknown session token", 404)
    return session_json(svc, session)


async def refund(request: Request, caller: Caller) -> Any:
    """`{invoice}` for exactly the refundable amount: stop the session, pay it back once."""
    svc = services(request)
    invoice = (await read_object(request)).get("invoice")
    if not isinstance(invoice, str) or not 0 < len(invoice) <= 2048:
        raise OcpiError(INVALID_PARAMETERS, "invoice: a BOLT11 invoice is required")
    token = SessionToken(request.path_params["token"])
    withdrawals = svc.use_cases.withdrawals
    try:
        offer = await withdrawals.offer(token)
        outcome = await withdrawals.claim(token, offer.k1, invoice)
    except Refused as exc:
        raise OcpiError(REFUSED, f"cannot refund now: {exc}") from None
    session = await svc.sessions.by_token(token.token)
    return {"status": str(outcome.status),
            "session": session_json(svc, session or offer.session)}


_base = f"/ocpi/{VERSION}/lightning/sessions"
routes = [
    Route(_base, endpoint(create), methods=["POST"]),
    Route(f"{_base}/{{token}}", endpoint(show), methods=["GET"]),
    Route(f"{_base}/{{token}}/refund", endpoint(refund), methods=["POST"]),
]
