"""OCPI RESERVE_NOW / CANCEL_RESERVATION end to end: strom as CPO, the spec-written eMSP
(tests/doubles/emsp.py) and the ocpp library's 1.6 ChargePoint with the Reservation profile.

An eMSP's reservation holds the connector through strom's reservations core (ReserveNow to
the charger, a lightning payer refused), is used by a START_SESSION of the same eMSP with the
same token (billed postpaid, the CDR equal to the roaming book), is cancelled by its eMSP only,
and expires.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from strom.timeutil import iso, utcnow
from tests.doubles.emsp import Emsp
from tests.money.conftest import CP, World
from tests.money.test_reservations import CoreOnlyCharger, reserve, reserving
from tests.ocpi.conftest import at_once, command, registered
from tests.polling import eventually

TOKEN = {"country_code": "NL", "party_id": "EMS", "uid": "CARD-0042", "type": "RFID",
         "contract_id": "NL-EMS-C00000042-X", "issuer": "Test eMSP", "valid": True,
         "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"}


async def _command(world: World, emsp: Emsp, name: str, ref: str,
                   **body: Any) -> dict[str, Any]:
    answer = await command(world.http, emsp, name, ref, **body)
    assert answer.json()["status_code"] == 1000, answer.text
    return answer.json()["data"]  # type: ignore[no-any-return]


async def _result(emsp: Emsp, command: str, ref: str) -> str:
    async def posted() -> list[tuple[str, str, Any]]:
        return [r for r in emsp.pushes("commands") if r[1].endswith(f"/{command}/{ref}")]
    found = await eventually(posted, lambda r: len(r) == 1)
    return str(found[0][2]["result"])


def _reserve(reservation_id: str, seconds: float = 600.0) -> dict[str, Any]:
    return {"token": TOKEN, "expiry_date": iso(utcnow() + timedelta(seconds=seconds)),
            "reservation_id": reservation_id, "location_id": CP, "evse_uid": f"{CP}-1",
            "authorization_reference": "res-auth-1"}


async def test_a_reservation_holds_the_evse_and_start_session_by_its_token_uses_it(
        data_dir: Path) -> None:
    async with reserving(data_dir) as (world, charger), Emsp().running() as emsp, \
            Emsp(party_id="OTH").running() as other:
        await registered(world, emsp)
        await registered(world, other)
        assert (await _command(world, emsp, "RESERVE_NOW", "r", **_reserve("res-1"))
                )["result"] == "ACCEPTED"
        assert await _result(emsp, "RESERVE_NOW", "r") == "ACCEPTED"
        (held,) = charger.reservations.values()
        assert held["connector_id"] == 1 and held["id_tag"].startswith("OCPI")

        # A lightning payer is refused on the held connector, like for a paid reservation.
        refused = (await world.http.get(f"/lnurlp/{CP}")).json()
        assert refused["status"] == "ERROR" and "reserved for another driver" in \
            refused["reason"], refused
        assert (await world.http.get(f"/reserve/{CP}")).json()["status"] == "ERROR"

        # Another party can neither cancel it nor start on it; its id names nothing there.
        assert (await _command(world, other, "CANCEL_RESERVATION", "c",
                               reservation_id="res-1"))["result"] == "REJECTED"
        assert charger.cancelled == []
        other_token = {**TOKEN, "party_id": "OTH"}
        assert (await _command(world, other, "START_SESSION", "s", token=other_token,
                               location_id=CP, evse_uid=f"{CP}-1"))["result"] == "REJECTED"
        # Nor the same eMSP with another token.
        assert (await _command(world, emsp, "START_SESSION", "x",
                               token={**TOKEN, "uid": "CARD-9"}, location_id=CP,
                               evse_uid=f"{CP}-1"))["result"] == "REJECTED"

        # The token's START_SESSION starts with the reserved idTag; billed to the eMSP.
        assert (await _command(world, emsp, "START_SESSION", "s", token=TOKEN,
                               location_id=CP, evse_uid=f"{CP}-1"))["result"] == "ACCEPTED"
        assert await _result(emsp, "START_SESSION", "s") == "ACCEPTED"
        await eventually(lambda: at_once(charger.transactions), lambda t: 1 in t)
        sessions = await world.app.services.ocpi.roaming.of_party(
            (await world.app.services.ocpi.parties.registered())[0].id)
        (session,) = [s for s in sessions if s.id_tag == held["id_tag"]]
        assert session.authorization_reference == "res-auth-1"
        await charger.meter(1, 2000.0, 7000.0)
        live = await eventually(lambda: world.app.services.ocpi.roaming.get(session.id),
                                lambda s: s is not None and s.energy_wh == 2000.0)
        assert live is not None and live.transaction_id is not None
        assert (await _command(world, emsp, "STOP_SESSION", "t", session_id=session.id)
                )["result"] == "ACCEPTED"
        cdrs = await eventually(lambda: at_once(emsp.pushes_to("cdrs", "POST")),
                                lambda c: len(c) == 1)
        done = await world.app.services.ocpi.roaming.get(session.id)
        assert done is not None and cdrs[0][2]["strom_cost_msat"] == done.cost_msat > 0
        assert cdrs[0][2]["cdr_token"]["uid"] == TOKEN["uid"]
        check = (await world.http.get("/api/v1/ledger/check", headers=world.admin)).json()
        assert check["ok"] and check["roaming_owed_msat"] == done.cost_msat, check
        assert check["received_msat"] == 0  # no fee: the eMSP pays for the charging only
        # Used: it holds nothing any more, so the eMSP's cancel finds none.
        assert (await _command(world, emsp, "CANCEL_RESERVATION", "c2",
                               reservation_id="res-1"))["result"] == "REJECTED"


async def test_cancel_by_its_emsp_frees_the_connector(data_dir: Path) -> None:
    async with reserving(data_dir) as (world, charger), Emsp().running() as emsp:
        await registered(world, emsp)
        await _command(world, emsp, "RESERVE_NOW", "r", **_reserve("res-2"))
        assert await _result(emsp, "RESERVE_NOW", "r") == "ACCEPTED"
        (rid,) = charger.reservations
        assert (await _command(world, emsp, "CANCEL_RESERVATION", "c",
                               reservation_id="res-2"))["result"] == "ACCEPTED"
        assert await _result(emsp, "CANCEL_RESERVATION", "c") == "ACCEPTED"
        assert charger.cancelled == [rid]
        offer = await eventually(lambda: _get_json(world, f"/lnurlp/{CP}"),
                                 lambda o: o.get("tag") == "payRequest")
        assert offer["tag"] == "payRequest"


async def test_a_reservation_expires_and_bad_ones_are_refused(data_dir: Path) -> None:
    async with reserving(data_dir) as (world, charger), Emsp().running() as emsp:
        await registered(world, emsp)
        bad = await world.http.post("/ocpi/2.2.1/commands/RESERVE_NOW", headers=emsp.auth, json={
            "response_url": f"{emsp.base}/x", **_reserve("res-3", seconds=-5)})
        assert bad.json()["status_code"] == 2001
        bad = await world.http.post("/ocpi/2.2.1/commands/RESERVE_NOW", headers=emsp.auth, json={
            "response_url": f"{emsp.base}/x", **{**_reserve("res-3"), "reservation_id": 7}})
        assert bad.json()["status_code"] == 2001
        await _command(world, emsp, "RESERVE_NOW", "r", **_reserve("res-3", seconds=3))
        assert await _result(emsp, "RESERVE_NOW", "r") == "ACCEPTED"
        assert (await world.http.get(f"/lnurlp/{CP}")).json()["status"] == "ERROR"
        await charger.status(1, "Available")  # still held by strom until its expiry
        assert (await world.http.get(f"/lnurlp/{CP}")).json()["status"] == "ERROR"
        offer = await eventually(lambda: _get_json(world, f"/lnurlp/{CP}"),
                                 lambda o: o.get("tag") == "payRequest")
        assert offer["tag"] == "payRequest"
        assert (await _command(world, emsp, "CANCEL_RESERVATION", "c",
                               reservation_id="res-3"))["result"] == "REJECTED"


async def test_a_paid_reservation_refuses_an_emsp_and_nonsense_fields_get_2001(
        data_dir: Path) -> None:
    async with reserving(data_dir) as (world, charger), Emsp().running() as emsp:
        await registered(world, emsp)
        paid = await reserve(world)  # a driver's lightning reservation holds connector 1
        await _command(world, emsp, "RESERVE_NOW", "r", **_reserve("res-5"))
        assert await _result(emsp, "RESERVE_NOW", "r") == "REJECTED"
        assert len(charger.reservations) == 1
        assert (await world.session(paid["url"]))["state"] == "reserved"
        for field, value in (("expiry_date", 5), ("expiry_date", "9999-99-99"),
                             ("expiry_date", iso(utcnow() + timedelta(days=3))),
                             ("reservation_id", ["a"]), ("reservation_id", "x" * 37),
                             ("token", {"uid": ""}), ("authorization_reference", 1)):
            answer = await world.http.post(
                "/ocpi/2.2.1/commands/RESERVE_NOW", headers=emsp.auth,
                json={"response_url": f"{emsp.base}/x", **{**_reserve("r"), field: value}})
            assert answer.json()["status_code"] == 2001, (field, value, answer.text)
        await world.ledger_ok()


async def test_a_reservation_outlives_a_restart(data_dir: Path) -> None:
    async with Emsp().running() as emsp:
        async with reserving(data_dir) as (world, charger):
            await registered(world, emsp)
            await _command(world, emsp, "RESERVE_NOW", "r", **_reserve("res-6"))
            assert await _result(emsp, "RESERVE_NOW", "r") == "ACCEPTED"
            (held,) = charger.reservations.values()
        async with reserving(data_dir) as (world, charger):  # the same data dir: a restart
            await charger.status(1, "Available")
            refused = (await world.http.get(f"/lnurlp/{CP}")).json()
            assert "reserved for another driver" in refused.get("reason", ""), refused
            assert (await _command(world, emsp, "START_SESSION", "s", token=TOKEN,
                                   location_id=CP, evse_uid=f"{CP}-1"))["result"] == "ACCEPTED"
            assert await _result(emsp, "START_SESSION", "s") == "ACCEPTED"
            await eventually(lambda: at_once(charger.transactions), lambda t: 1 in t)
            assert (await world.app.services.ocpi.roaming.of_party(
                (await world.app.services.ocpi.parties.registered())[0].id)
                    )[0].id_tag == held["id_tag"]


async def test_a_charger_without_the_reservation_profile_is_not_supported(
        data_dir: Path) -> None:
    async with reserving(data_dir, CoreOnlyCharger) as (world, charger), \
            Emsp().running() as emsp:
        await registered(world, emsp)
        answer = await _command(world, emsp, "RESERVE_NOW", "r", **_reserve("res-4"))
        assert answer["result"] == "NOT_SUPPORTED" and charger.reservations == {}


async def _get_json(world: World, path: str) -> Any:
    return (await world.http.get(path)).json()
