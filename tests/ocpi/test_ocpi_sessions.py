"""Money over OCPI: START_SESSION/STOP_SESSION commands to Session pushes and a CDR equal to
the roaming book, the `lightning` module's prepaid session and its refund, a start that never
begins, and a roaming session across a restart billed once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from strom.app import StromApp
from strom.paths import admin_token_path
from tests.api.charger import TestCharger, running_charger
from tests.cards.charger import CardCharger
from tests.conftest import free_settings
from tests.doubles.edges import make_invoice
from tests.doubles.emsp import Emsp
from tests.money.conftest import CP, running_world
from tests.ocpi.conftest import FAST_PUSH, at_once, command, registered
from tests.polling import eventually


async def test_start_session_by_command_to_cdr_equal_to_the_ledger(data_dir: Path) -> None:
    """START_SESSION → the charger starts → Session pushes → STOP_SESSION → CDR whose total
    is what the roaming book holds; the ledger check stays true."""
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        await registered(world, emsp)
        http, ocpi = world.http, world.app.services.ocpi
        token = {"country_code": "NL", "party_id": "EMS", "uid": "CARD-0001", "type": "RFID",
                 "contract_id": "NL-EMS-C00001234-X", "issuer": "Test eMSP", "valid": True,
                 "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"}
        start_url = f"{emsp.base}/2.2.1/commands/START_SESSION/s-1"
        answer = await http.post("/ocpi/2.2.1/commands/START_SESSION", headers=emsp.auth, json={
            "response_url": start_url, "token": token, "location_id": CP,
            "evse_uid": f"{CP}-1", "connector_id": "1", "authorization_reference": "auth-1"})
        assert answer.json()["data"] == {"result": "ACCEPTED", "timeout": 30}, answer.text
        results = await eventually(lambda: at_once(emsp.pushes("commands")),
                                   lambda r: len(r) == 1)
        assert results[0][1].endswith("/START_SESSION/s-1") and results[0][2]["result"] == \
            "ACCEPTED"
        # The charger charges; the eMSP gets the Session while it charges.
        await world.charger.wait_for(lambda: world.charger.transaction_id(1) is not None)
        pushed = await eventually(lambda: at_once(emsp.pushes("sessions", "PUT")),
                                  lambda p: any(b["kwh"] > 0 for _, _, b in p))
        live = next(b for _, _, b in pushed if b["kwh"] > 0)
        assert live["status"] == "ACTIVE" and live["cdr_token"]["uid"] == "CARD-0001"
        assert live["authorization_reference"] == "auth-1"
        assert pushed[0][1].endswith(f"/sessions/DE/STR/{live['id']}")
        # Another party's session id, or nonsense: UNKNOWN_SESSION.
        unknown = await http.post("/ocpi/2.2.1/commands/STOP_SESSION", headers=emsp.auth,
                                  json={"response_url": start_url, "session_id": "nope"})
        assert unknown.json()["data"]["result"] == "UNKNOWN_SESSION"
        stop_url = f"{emsp.base}/2.2.1/commands/STOP_SESSION/s-2"
        stopped = await http.post("/ocpi/2.2.1/commands/STOP_SESSION", headers=emsp.auth,
                                  json={"response_url": stop_url, "session_id": live["id"]})
        assert stopped.json()["data"]["result"] == "ACCEPTED", stopped.text
        cdrs = await eventually(lambda: at_once(emsp.pushes_to("cdrs", "POST")),
                                lambda c: len(c) == 1)
        cdr = cdrs[0][2]
        assert cdr["session_id"] == live["id"] and cdr["currency"] == "BTC"
        assert cdr["total_energy"] > 0 and cdr["cdr_location"]["evse_uid"] == f"{CP}-1"
        session = await ocpi.roaming.get(live["id"])
        assert session is not None and session.state == "completed"
        assert cdr["strom_cost_msat"] == session.cost_msat > 0
        assert round(cdr["total_cost"]["excl_vat"] * 10**11) == session.cost_msat
        assert cdr["total_energy"] == round(session.energy_wh / 1000, 3)
        check = (await http.get("/api/v1/ledger/check", headers=world.admin)).json()
        assert check["ok"], check
        assert (check["roaming_sessions"], check["roaming_owed_msat"]) == (1, session.cost_msat)
        final = [b for _, _, b in emsp.pushes("sessions", "PUT") if b["status"] == "COMPLETED"]
        assert final and final[-1]["strom_cost_msat"] == session.cost_msat
        stop_results = [r for r in emsp.pushes("commands") if "STOP_SESSION" in r[1]]
        assert stop_results[0][2]["result"] == "ACCEPTED"
        # No lightning session was made for it: the payers' books are untouched.
        assert check["sessions"] == 0 and check["received_msat"] == 0
        pulled = (await http.get(emsp.strom_endpoints["cdrs"], headers=emsp.auth)).json()
        assert [c["strom_cost_msat"] for c in pulled["data"]] == [session.cost_msat]
        listed = (await http.get(emsp.strom_endpoints["sessions"], headers=emsp.auth)).json()
        assert [s["status"] for s in listed["data"]] == ["COMPLETED"]



async def test_lightning_prepaid_roaming_session_is_refunded(data_dir: Path) -> None:
    """The `lightning` module: an eMSP prepays with strom's BOLT11 invoice, the charger starts
    as for an LNURL payment, and the unused amount goes back to the eMSP's invoice once."""
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        await registered(world, emsp)
        http = world.http
        assert "lightning" in emsp.strom_endpoints
        base = emsp.strom_endpoints["lightning"] + "/sessions"
        bad = await http.post(base, headers=emsp.auth, json={
            "location_id": CP, "evse_uid": f"{CP}-1", "amount_msat": 5})
        assert bad.json()["status_code"] == 2001 and "amount" in bad.json()["status_message"]
        made = await http.post(base, headers=emsp.auth, json={
            "location_id": CP, "evse_uid": f"{CP}-1", "amount_msat": 20_000_000})
        data = made.json()["data"]
        assert data["bolt11"].startswith("lnbcrt") and data["amount_msat"] == 20_000_000
        paid = await http.post("/api/v1/dev/pay", json={"bolt11": data["bolt11"]},
                               headers=world.admin)
        assert paid.json()["settled"], paid.text
        token = data["session_token"]

        async def state() -> dict:
            return (await http.get(f"{base}/{token}", headers=emsp.auth)).json()["data"]

        await eventually(state, lambda s: s["state"] == "charging" and s["consumed_msat"] > 0,
                         seconds=20)
        # Only with the party's token C: the session token alone opens nothing here.
        assert (await http.get(f"{base}/{token}")).status_code == 401
        # A refund stops the session first; an invoice that is no invoice is refused, unpaid.
        nonsense = await http.post(f"{base}/{token}/refund", headers=emsp.auth,
                                   json={"invoice": "lnbc1nonsense"})
        assert nonsense.json()["status_code"] == 2000
        stopped = await eventually(state, lambda s: s["state"] == "stopped", seconds=20)
        invoice = make_invoice(stopped["refundable_msat"], currency="bcrt")
        done = await http.post(f"{base}/{token}/refund", headers=emsp.auth,
                               json={"invoice": invoice})
        body = done.json()
        assert body["status_code"] == 1000, body
        final = body["data"]["session"]
        assert final["state"] == "refunded"
        assert final["paid_msat"] == final["consumed_msat"] + final["refunded_msat"] \
            == 20_000_000
        again = await http.post(f"{base}/{token}/refund", headers=emsp.auth,
                                json={"invoice": invoice})
        assert again.json()["status_code"] == 2000  # paid once
        await world.ledger_ok()



class NoCarCharger(CardCharger):
    """Accepts RemoteStart, but no car ever plugs in: no StartTransaction follows."""

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, connector_id: int | None = None,
                              **_: Any) -> call_result.RemoteStartTransaction:
        return call_result.RemoteStartTransaction(status="Accepted")



async def test_a_start_that_never_begins_is_invalid_and_a_busy_evse_rejected(
        data_dir: Path) -> None:
    async with running_world(data_dir, sessions={"start_timeout": 0.5}, **FAST_PUSH) as world, \
            Emsp().running() as emsp:
        await registered(world, emsp)
        await world.app.services.charge_points.add("nocar", name="Lot", lat=1.0, lon=2.0)
        token = emsp.token("APP-1", "ALLOWED")
        async with running_charger(world.app.services.central_system.url, "nocar",
                                   connectors=1, charger_class=NoCarCharger) as charger:

            async def shows(status: str) -> None:
                await charger.status(1, status)
                await eventually(lambda: world.app.services.charge_points.get("nocar"),
                                 lambda cp: cp is not None and cp.connectors[-1].status == status)

            await shows("Available")
            answer = await command(world.http, emsp, "START_SESSION", "n-1", token=token,
                                  location_id="nocar", evse_uid="nocar-1")
            assert answer.json()["data"]["result"] == "ACCEPTED"
            pushed = await eventually(lambda: at_once(emsp.pushes("sessions", "PUT")),
                                      lambda p: any(b["status"] == "INVALID" for _, _, b in p))
            assert [b["kwh"] for _, _, b in pushed] == [0]
            # Charging (here: another driver's car) is no EVSE to start on.
            await shows("Charging")
            busy = await command(world.http, emsp, "START_SESSION", "n-2", token=token,
                                  location_id="nocar", evse_uid="nocar-1")
            assert busy.json()["data"]["result"] == "REJECTED"
        check = (await world.http.get("/api/v1/ledger/check", headers=world.admin)).json()
        assert check["ok"] and check["roaming_owed_msat"] == 0



async def test_a_roaming_session_across_a_restart_is_billed_once(data_dir: Path) -> None:
    """strom restarts while a roaming session charges: the readings after the restart are
    billed on top, the CDR comes once, and its total is the book."""
    async with Emsp().running() as emsp:
        async with StromApp(free_settings(**FAST_PUSH), data_dir) as app:
            await app.services.charge_points.add("rs", name="Restart St", lat=1.0, lon=2.0)
            async with httpx.AsyncClient(base_url=app.http_url) as http:
                _, token_a = await app.services.ocpi.parties.issue("eMSP")
                await emsp.register(http, f"{app.http_url}/ocpi/versions", token_a)
                async with running_charger(app.services.central_system.url, "rs",
                                           connectors=1) as charger:
                    await eventually(lambda: app.services.charge_points.get("rs"),
                                     lambda cp: cp is not None and cp.connected
                                     and cp.connectors[-1].status == "Available")
                    answer = await command(http, emsp, "START_SESSION", "r",
                                           token=emsp.token("APP-2"), location_id="rs",
                                           evse_uid="rs-1")
                    assert answer.json()["data"]["result"] == "ACCEPTED"
                    await eventually(lambda: at_once(dict(charger.transactions)),
                                     lambda t: 1 in t)
                    await charger.meter(1, 1000.0, 7000.0)
                    await eventually(lambda: at_once(emsp.pushes("sessions", "PUT")),
                                     lambda p: any(b["kwh"] == 1.0 for _, _, b in p))
                    kept = dict(charger.transactions)
        async with StromApp(free_settings(**FAST_PUSH), data_dir) as app:
            async with running_charger(app.services.central_system.url, "rs",
                                       connectors=1, charger_class=TestCharger) as charger:
                charger.transactions = kept
                await charger.meter(1, 2500.0, 7000.0)
                await charger._stop(kept[1])
                cdrs = await eventually(lambda: at_once(emsp.pushes_to("cdrs", "POST")),
                                        lambda c: len(c) >= 1)
                await asyncio.sleep(0.3)  # nothing more comes
                assert len(emsp.pushes_to("cdrs", "POST")) == 1
            cdr = cdrs[0][2]
            assert cdr["total_energy"] == 2.5
            async with httpx.AsyncClient(base_url=app.http_url) as http:
                token = admin_token_path(data_dir).read_text().strip()
                check = (await http.get("/api/v1/ledger/check",
                                        headers={"Authorization": f"Bearer {token}"})).json()
            assert check["ok"] and check["roaming_owed_msat"] == cdr["strom_cost_msat"] > 0
