"""What the operator sees of a charge point: the public view plus live session and takings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from strom.container import Services
from strom.ocpp.protocols import SUPPORTED
from strom.passthrough.config import public_upstream
from strom.sessions.model import ACTIVE_STATES, Session, State
from strom.store.charge_points import ChargerRecord
from strom.timeutil import iso
from strom.views import charge_point_json

# A paid session is about to take a connector; the operator should see it as current.
CURRENT_STATES = (State.PAID, *ACTIVE_STATES)


def start_of_today() -> str:
    """Local midnight as the store's UTC ISO text, so it compares with `ledger.at`."""
    midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    return iso(midnight)


async def current_sessions(svc: Services) -> dict[str, list[Session]]:
    """Sessions that hold or are about to hold a connector, per charge point."""
    by_cp: dict[str, list[Session]] = {}
    for session in await svc.sessions.in_states(*CURRENT_STATES):
        by_cp.setdefault(session.cp_id, []).append(session)
    return by_cp


def session_brief(session: Session) -> dict[str, Any]:
    return {"id": session.id, "state": session.state.value, "connector_id": session.connector,
            "energy_wh": round(session.energy_wh, 3), "power_w": session.power_w,
            "paid_msat": session.paid_msat, "consumed_msat": session.consumed_msat}


def admin_charge_point_json(svc: Services, cp: ChargerRecord, sessions: list[Session],
                            earned_today_msat: int) -> dict[str, Any]:
    """Public view (contract §6) plus what only the operator needs."""
    view = charge_point_json(svc, cp)
    view.update({
        "connected": cp.connected, "num_connectors": cp.num_connectors,
        "vendor": cp.vendor, "model": cp.model, "firmware": cp.firmware,
        "last_seen": cp.last_seen, "booted_at": cp.booted_at,
        # The OCPP it last connected with, and what it may use (strom picks the highest).
        "ocpp_protocol": cp.ocpp_protocol, "ocpp_protocols": list(cp.ocpp_protocols or SUPPORTED),
        "security_profile": cp.security_profile or 1, "client_cert_sha256": cp.client_cert_sha256,
        "boot": cp.boot_status or "Accepted",
        "has_password": cp.password_hash is not None, "tariff_override": cp.tariff,
        # Passthrough: the backend it keeps (`strom.passthrough`), never its password.
        "upstream": public_upstream(cp.upstream),
        "power_w": sum(s.power_w or 0.0 for s in sessions),
        "sessions": [session_brief(s) for s in sessions],
        "earned_today_msat": earned_today_msat,
        # How its metering was configured at its last boot (`strom.ocpp.sampling`).
        "metering": svc.central_system.sampling(cp.id),
    })
    for connector in view["connectors"]:
        stored = cp.connector(connector["id"])
        connector["error_code"] = stored.error_code if stored else "NoError"
    return view


async def admin_views(svc: Services, cps: list[ChargerRecord]) -> list[dict[str, Any]]:
    """Admin views of `cps`, with two queries for all of them rather than two each."""
    current = await current_sessions(svc)
    earned = await svc.sessions.earned_since(start_of_today())
    return [admin_charge_point_json(svc, cp, current.get(cp.id, []), earned.get(cp.id, 0))
            for cp in cps]
