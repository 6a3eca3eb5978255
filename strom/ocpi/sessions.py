"""A roaming session as OCPI 2.2.1 Session (part 9) and CDR (part 10) objects. Amounts are
in BTC, exact to the msat, or in EUR (see `strom.ocpi.currency`); the CDR's total is the
session's cost, which is what the roaming book holds for it (`strom_cost_msat`, exact). A CDR
is converted at the rate recorded when its session completed, so every pull shows the same
amount; a running Session at the rate of the moment."""

from __future__ import annotations

from typing import Any

from strom.config import OcpiSettings
from strom.ocpi.currency import Conversion, recorded
from strom.ocpi.locations import coordinates, evse_id, evse_uid
from strom.store.charge_points import ChargerRecord
from strom.store.ocpi import RoamingSession
from strom.timeutil import iso, parse_iso

STATUS = {"pending": "PENDING", "active": "ACTIVE", "completed": "COMPLETED",
          "invalid": "INVALID"}


def cdr_token(session: RoamingSession) -> dict[str, Any]:
    token = session.token
    return {"country_code": token.get("country_code", ""), "party_id": token.get("party_id", ""),
            "uid": token.get("uid", ""), "type": token.get("type", "APP_USER"),
            "contract_id": token.get("contract_id", token.get("uid", ""))}


def conversion(session: RoamingSession, now: Conversion) -> Conversion:
    """A completed session's recorded conversion (its CDR's); `now` while it runs."""
    if session.state == "completed":
        return recorded(session.eur_per_btc, session.rate_at)
    return now


def session_object(session: RoamingSession, settings: OcpiSettings,
                   now: Conversion) -> dict[str, Any]:
    """The Session; `now`: the conversion of the moment (a completed one keeps its own)."""
    money = conversion(session, now)
    body: dict[str, Any] = {
        "country_code": settings.country_code, "party_id": settings.party_id,
        "id": session.id, "start_date_time": session.started_at,
        "kwh": round(session.energy_wh / 1000, 3), "cdr_token": cdr_token(session),
        "auth_method": "COMMAND", "location_id": session.cp_id,
        "evse_uid": evse_uid(session.cp_id, session.connector_id), "connector_id": "1",
        "currency": money.currency, "total_cost": {"excl_vat": money.amount(session.cost_msat)},
        "status": STATUS[session.state], "last_updated": session.updated_at,
        "strom_cost_msat": session.cost_msat,  # the exact amount (extension)
        **money.extension(),
    }
    if session.authorization_reference:
        body["authorization_reference"] = session.authorization_reference
    if session.stopped_at:
        body["end_date_time"] = session.stopped_at
    return body


def cdr_object(session: RoamingSession, cp: ChargerRecord | None,
               settings: OcpiSettings) -> dict[str, Any]:
    """The CDR of a completed session (its id is the session's)."""
    end = session.stopped_at or iso()
    hours = max(0.0, (parse_iso(end) - parse_iso(session.started_at)).total_seconds() / 3600)
    kwh = round(session.energy_wh / 1000, 3)
    uid = evse_uid(session.cp_id, session.connector_id)
    money = recorded(session.eur_per_btc, session.rate_at)
    return {
        "country_code": settings.country_code, "party_id": settings.party_id, "id": session.id,
        "start_date_time": session.started_at, "end_date_time": end,
        "session_id": session.id, "cdr_token": cdr_token(session), "auth_method": "COMMAND",
        "authorization_reference": session.authorization_reference,
        "cdr_location": {
            "id": session.cp_id, "name": cp.name if cp else session.cp_id,
            "address": cp.name if cp else session.cp_id, "city": settings.city or "-",
            "country": settings.country,
            "coordinates": coordinates(cp) if cp else {"latitude": "0", "longitude": "0"},
            "evse_uid": uid,
            "evse_id": evse_id(settings, session.cp_id, session.connector_id),
            "connector_id": "1", "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET", "connector_power_type": "AC_3_PHASE"},
        "currency": money.currency,
        "charging_periods": [{"start_date_time": session.started_at, "dimensions": [
            {"type": "ENERGY", "volume": kwh}], "tariff_id": session.cp_id}],
        "total_cost": {"excl_vat": money.amount(session.cost_msat)},
        "total_energy": kwh, "total_time": round(hours, 6),
        "strom_cost_msat": session.cost_msat, **money.extension(),
        "last_updated": session.updated_at,
    }
