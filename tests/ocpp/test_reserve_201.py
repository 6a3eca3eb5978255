"""ReserveNow and CancelReservation over OCPP 2.0.1 (issue 21), with the ocpp library's v201
ChargePoint as the charger: it validates what strom sends against the 2.0.1 schemas, and its
status words come back as `Outcome`s."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from strom.chargers.control import ControlDispatcher, Outcome
from strom.timeutil import iso, utcnow
from tests.ocpp.charger201 import Charger201, running_charger201
from tests.ocpp.conftest import Ocpp


class Reserving201(Charger201):
    __test__ = False

    @on(Action.reserve_now)
    async def on_reserve_now(self, id: int, expiry_date_time: str, id_token: dict[str, Any],
                             evse_id: int | None = None, **_: Any) -> call_result.ReserveNow:
        self.asked.append(("ReserveNow", {"id": id, "expiry_date_time": expiry_date_time,
                                          "id_token": id_token, "evse_id": evse_id}))
        return call_result.ReserveNow(status="Accepted" if evse_id == 1 else "Occupied")

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id: int,
                                    **_: Any) -> call_result.CancelReservation:
        self.asked.append(("CancelReservation", {"reservation_id": reservation_id}))
        return call_result.CancelReservation(status="Accepted")


async def test_reservations_speak_2_0_1(accepting: Ocpp) -> None:  # noqa: F811
    chargers = ControlDispatcher(*accepting.central.adapters)
    until = utcnow() + timedelta(minutes=15)
    async with running_charger201(accepting.url(""), "cp-1",
                                  charger_class=Reserving201) as charger:
        held = await chargers.reserve_now("cp-1", 1, expiry=until, id_tag="TAG", reservation_id=7)
        assert (held.outcome, held.status) == (Outcome.ACCEPTED, "Accepted")
        assert charger.asked[-1] == ("ReserveNow", {
            "id": 7, "expiry_date_time": iso(until), "evse_id": 1,
            "id_token": {"id_token": "TAG", "type": "Central"}})
        taken = await chargers.reserve_now("cp-1", 2, expiry=until, id_tag="TAG",
                                           reservation_id=8)
        assert (taken.outcome, taken.status) == (Outcome.REJECTED, "Occupied")
        assert (await chargers.cancel_reservation("cp-1", 7)).ok
        assert charger.asked[-1] == ("CancelReservation", {"reservation_id": 7})
        # Drivers are not offered reservations here yet (ReservationCtrlr is not read).
        offered = await chargers.reservations_supported("cp-1")
        assert offered.outcome == Outcome.NOT_SUPPORTED and offered.answered
