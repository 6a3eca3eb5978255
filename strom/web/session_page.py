"""`/s/{token}`: the payer's session page (HTML, or the session JSON with
`Accept: application/json`), and its top-up payRequest `/s/{token}/topup` (LUD-06).

The token is a 128-bit secret: whoever holds it is the payer.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from strom import qr
from strom.lightning.wallet import WalletError
from strom.lnurl import pay as lud06
from strom.lnurl.codec import lnurl_encode
from strom.lnurl.errors import LnurlError
from strom.services import Services
from strom.sessions.model import Session
from strom.sessions.service import SessionError
from strom.views import session_json
from strom.web.auth import services
from strom.web.responses import lnurl_response
from strom.web.templating import templates

STATE_WORDS = {
    "pending_payment": "Waiting for your payment", "paid": "Paid, starting the charger",
    "starting": "Starting the charger", "charging": "Charging", "stopping": "Stopping",
    "stopped": "Stopped", "refunded": "Finished and refunded", "settled": "Finished",
    "failed": "Did not start: your payment is refundable",
}


async def _session(request: Request) -> tuple[Services, Session]:
    svc = services(request)
    assert svc.sessions is not None
    session = await svc.sessions.repo.by_token(request.path_params["token"])
    if session is None:
        raise HTTPException(404, "no such session")
    return svc, session


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def session_page(request: Request) -> Response:
    svc, session = await _session(request)
    data = session_json(svc, session)
    if wants_json(request):
        return JSONResponse(data, headers={"Cache-Control": "no-store"})
    topup = lnurl_encode(f"{svc.settings.public_url}/s/{session.token}/topup")
    return templates.TemplateResponse(request, "session.html", {
        "s": data, "token": session.token, "state_words": STATE_WORDS.get(data["state"], ""),
        "withdraw_qr": qr.svg(f"lightning:{data['lnurlw']}", title="Stop and refund"),
        "topup_qr": qr.svg(f"lightning:{topup}", title="Top up"),
    }, headers={"Cache-Control": "no-store"})


def _topup_metadata(svc: Services, session: Session) -> str:
    return lud06.metadata(f"Top up charging session {session.id} at {session.cp_id}")


async def topup_request(request: Request) -> Response:
    svc, session = await _session(request)
    tariff = session.tariff
    return lnurl_response(lud06.pay_request(
        callback=f"{svc.settings.public_url}/s/{session.token}/topup/callback",
        min_sendable=1000, max_sendable=max(tariff.max_prepay_msat - session.paid_msat, 1000),
        metadata_json=_topup_metadata(svc, session), comment_allowed=0))


async def topup_callback(request: Request) -> Response:
    svc, session = await _session(request)
    assert svc.sessions is not None
    try:
        amount = lud06.parse_amount(request.query_params.get("amount"), 1000,
                                    max(session.tariff.max_prepay_msat - session.paid_msat, 1000))
        pending = await svc.sessions.create_topup(
            session, amount,
            description_hash=lud06.description_hash(_topup_metadata(svc, session)))
    except SessionError as exc:
        return lnurl_response(LnurlError(str(exc)).to_json())
    except WalletError:
        return lnurl_response(LnurlError("payments temporarily unavailable").to_json())
    except LnurlError as exc:
        return lnurl_response(exc.to_json())
    return lnurl_response({"pr": pending.bolt11, "routes": []})


routes = [
    Route("/s/{token}", session_page),
    Route("/s/{token}/topup", topup_request),
    Route("/s/{token}/topup/callback", topup_callback),
]
