"""strom's chargers as OCPI 2.2.1 Locations (part 8): one Location per charger, one EVSE per
OCPP connector, each EVSE with one connector (strom does not know plug types: Type 2 socket,
AC three-phase, as most public AC chargers; an operator with other plugs says so in docs)."""

from __future__ import annotations

from typing import Any

from strom.config import OcpiSettings
from strom.store.charge_points import ChargerRecord

# OCPP ChargePointStatus → OCPI EVSE status.
STATUS = {
    "Available": "AVAILABLE", "Preparing": "AVAILABLE", "Charging": "CHARGING",
    "SuspendedEV": "CHARGING", "SuspendedEVSE": "CHARGING", "Finishing": "CHARGING",
    "Reserved": "RESERVED", "Unavailable": "INOPERATIVE", "Faulted": "OUTOFORDER",
}
CAPABILITIES = ["REMOTE_START_STOP_CAPABLE", "UNLOCK_CAPABLE"]


def evse_uid(cp_id: str, connector_id: int) -> str:
    return f"{cp_id}-{connector_id}"


def evse_id(settings: OcpiSettings, cp_id: str, connector_id: int) -> str:
    """The EVSE's eMI3 id (`DE*STR*E{charger}*{connector}`), in Locations and CDRs alike."""
    return f"{settings.country_code}*{settings.party_id}*E{cp_id}*{connector_id}"


def parse_evse_uid(uid: str) -> tuple[str, int] | None:
    """(charger id, connector) of an EVSE uid strom made, or None."""
    cp_id, _, number = uid.rpartition("-")
    return (cp_id, int(number)) if cp_id and number.isdigit() and len(number) < 4 else None


def evse_status(cp: ChargerRecord, connector_id: int) -> str:
    connector = cp.connector(connector_id)
    if not cp.connected or connector is None:
        return "UNKNOWN"
    whole = cp.connector(0)
    if whole is not None and whole.updated_at and whole.status in ("Unavailable", "Faulted"):
        return STATUS[whole.status]
    return STATUS.get(connector.status, "UNKNOWN")


def last_updated(cp: ChargerRecord) -> str:
    """The newest change OCPI shows of a charger: registration, boot, a connector's status."""
    moments = [cp.created_at, cp.booted_at or "", *(c.updated_at or "" for c in cp.connectors)]
    return max(moments)


def location(cp: ChargerRecord, settings: OcpiSettings) -> dict[str, Any]:
    """The OCPI Location of one charger (its connectors' tariff is the charger's: same id)."""
    evses = []
    for number in range(1, cp.num_connectors + 1):
        connector = cp.connector(number)
        updated = (connector.updated_at if connector and connector.updated_at
                   else cp.created_at)
        evses.append({
            "uid": evse_uid(cp.id, number),
            "evse_id": evse_id(settings, cp.id, number),
            "status": evse_status(cp, number),
            "capabilities": CAPABILITIES,
            "connectors": [{
                "id": "1", "standard": "IEC_62196_T2", "format": "SOCKET",
                "power_type": "AC_3_PHASE", "max_voltage": 230, "max_amperage": 32,
                "tariff_ids": [cp.id], "last_updated": updated}],
            "coordinates": coordinates(cp),
            "last_updated": updated,
        })
    return {
        "country_code": settings.country_code, "party_id": settings.party_id, "id": cp.id,
        "publish": True, "name": cp.name, "address": cp.name, "city": settings.city or "-",
        "country": settings.country, "coordinates": coordinates(cp),
        "time_zone": settings.time_zone, "opening_times": {"twentyfourseven": True},
        "evses": evses, "last_updated": last_updated(cp),
    }


def coordinates(cp: ChargerRecord) -> dict[str, str]:
    # OCPI: decimal strings, latitude ±90 with up to 7 decimals, longitude ±180.
    return {"latitude": f"{cp.lat:.6f}", "longitude": f"{cp.lon:.6f}"}
