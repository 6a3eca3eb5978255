"""An eMSP's reservations (OCPI RESERVE_NOW / CANCEL_RESERVATION): the connector is held
through strom's own reservations core (`Reservations.hold_roaming`, the same refusals and
expiry as a paid reservation) for an idTag strom gives the reservation; a START_SESSION of
the same eMSP with the same token on that EVSE before it expires starts on it. Postpaid like
a roaming session: no fee, the eMSP is billed for the charging only.

A reservation is known by (eMSP party, its `reservation_id`): another party's id names
nothing, so it can neither cancel nor use it (the id is no capability across parties).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from strom.chargers.control import ControlResult, Outcome
from strom.ocpi.envelope import INVALID_PARAMETERS, OcpiError
from strom.ocpi.roaming import ID_TAG_PREFIX
from strom.sessions.reservations import Reservations
from strom.store.charge_points import ChargerRecord
from strom.store.roaming_holds import RoamingHold
from strom.timeutil import parse_iso, utcnow

MAX_HOLD = timedelta(hours=24)  # the longest an eMSP may hold a connector


def holder(party: int, reservation_id: str) -> str:
    return f"ocpi:{party}:{reservation_id}"


def checked_token(body: dict[str, Any]) -> dict[str, str]:
    """The command's Token object, the fields strom keeps (2001 without a uid)."""
    token = body.get("token")
    if not isinstance(token, dict) or not isinstance(token.get("uid"), str) \
            or not 0 < len(token["uid"]) <= 36:
        raise OcpiError(INVALID_PARAMETERS, "token: a Token object with a uid is required")
    return {k: str(token[k])[:64] for k in ("country_code", "party_id", "uid", "type",
                                             "contract_id") if k in token}


def checked_reference(body: dict[str, Any]) -> str | None:
    reference = body.get("authorization_reference")
    if reference is not None and (not isinstance(reference, str) or len(reference) > 36):
        raise OcpiError(INVALID_PARAMETERS, "authorization_reference: up to 36 characters")
    return reference


def checked_id(body: dict[str, Any]) -> str:
    reservation_id = body.get("reservation_id")
    if not isinstance(reservation_id, str) or not 0 < len(reservation_id) <= 36:
        raise OcpiError(INVALID_PARAMETERS, "reservation_id: 1 to 36 characters")
    return reservation_id


class RoamingReservations:
    """RESERVE_NOW, CANCEL_RESERVATION, and which reservation a START_SESSION uses."""

    def __init__(self, reservations: Reservations) -> None:
        self._core = reservations

    def prepare(self, party: int, body: dict[str, Any], cp: ChargerRecord,
                connector_id: int) -> RoamingHold:
        """The hold a RESERVE_NOW asks for, checked now (2001 for a bad field)."""
        token = checked_token(body)
        reference = checked_reference(body)
        reservation_id = checked_id(body)
        try:
            until = parse_iso(str(body.get("expiry_date")))
        except ValueError:
            raise OcpiError(INVALID_PARAMETERS, "expiry_date: an RFC 3339 time") from None
        if not utcnow() < until <= utcnow() + MAX_HOLD:
            raise OcpiError(INVALID_PARAMETERS, "expiry_date: in the next 24 hours")
        return RoamingHold(
            holder=holder(party, reservation_id), cp_id=cp.id, connector_id=connector_id,
            until=until, id_tag=ID_TAG_PREFIX + secrets.token_hex(8),
            reservation_id=secrets.randbelow(2**31 - 2) + 1,
            about={"party": party, "token": token, "authorization_reference": reference})

    async def supported(self, cp_id: str) -> bool:
        return await self._core.charger_takes_reservations(cp_id)

    async def reserve(self, hold: RoamingHold) -> ControlResult:
        return await self._core.hold_roaming(hold)

    def known(self, party: int, body: dict[str, Any]) -> str | None:
        """The holder a CANCEL_RESERVATION names, when it is the caller's and holds."""
        reservation_id = body.get("reservation_id")
        if not isinstance(reservation_id, str) or len(reservation_id) > 36:
            return None
        name = holder(party, reservation_id)
        return name if self._core.roaming_hold(name) is not None else None

    async def cancel(self, name: str) -> ControlResult:
        result = await self._core.cancel_roaming(name)
        return result or ControlResult(Outcome.REJECTED, reason="no such reservation")

    def blocks(self, party: int, cp_id: str, connector_id: int,
               token: dict[str, str]) -> tuple[bool, RoamingHold | None]:
        """For a START_SESSION: whether a reservation keeps the EVSE from it, and the one it
        may use (the same party's, for the same token)."""
        holds = self._core.roaming_holds(cp_id, connector_id)
        mine = next((h for h in holds if h.about["party"] == party
                     and h.about["token"]["uid"].upper() == token["uid"].upper()), None)
        return bool(holds) and mine is None, mine

    async def use(self, hold: RoamingHold) -> None:
        await self._core.use_roaming(hold.holder)
