"""strom as an OCPI 2.2.1 CPO against an eMSP written from the spec (tests/doubles/emsp.py):
handshake, pulls with pagination, status pushes, commands with their async result, and bad
tokens and bodies answered with OCPI status codes."""

from __future__ import annotations

import asyncio
import base64
import json
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
from tests.doubles.emsp import Emsp, token_header
from tests.e2e.test_cli_basics import strom
from tests.money.conftest import CP, World, running_world
from tests.polling import eventually

FAST_PUSH = {"ocpi": {"push_backoff_seconds": 0.05, "push_attempts": 3}}


async def _registered(world: World, emsp: Emsp) -> str:
    """Token A issued by the operator, then the eMSP's handshake; returns strom's versions URL."""
    _, token_a = await world.app.services.ocpi.parties.issue("Test eMSP")
    versions_url = f"{world.app.http_url}/ocpi/versions"
    await emsp.register(world.http, versions_url, token_a)
    return token_a


async def test_handshake_pull_and_status_push(data_dir: Path) -> None:
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        token_a = await _registered(world, emsp)
        http = world.http
        # Token A is gone once registered; token C works, base64 (2.2.1) and plain (2.1.1).
        gone = await http.get("/ocpi/versions", headers=token_header(token_a))
        assert gone.status_code == 401 and gone.json()["status_code"] == 2000
        assert (await http.get("/ocpi/versions", headers=emsp.auth)).json()["status_code"] == 1000
        plain = await http.get("/ocpi/versions",
                               headers={"Authorization": f"Token {emsp.token_c}"})
        assert plain.json()["data"][0]["version"] == "2.2.1"

        # GET credentials: strom's role, not the token.
        own = (await http.get(emsp.strom_endpoints["credentials"], headers=emsp.auth)).json()
        assert own["data"]["roles"][0]["role"] == "CPO"

        # Locations: the charger with two EVSEs, its coordinates and status.
        answer = await http.get(emsp.strom_endpoints["locations"], headers=emsp.auth,
                                params={"limit": 1})
        assert answer.headers["X-Total-Count"] == "1" and answer.headers["X-Limit"] == "100"
        location = answer.json()["data"][0]
        assert location["id"] == CP and location["coordinates"] == {
            "latitude": "50.100000", "longitude": "8.700000"}
        assert [e["uid"] for e in location["evses"]] == [f"{CP}-1", f"{CP}-2"]
        assert location["evses"][0]["status"] == "AVAILABLE"
        assert "REMOTE_START_STOP_CAPABLE" in location["evses"][0]["capabilities"]
        one = await http.get(f"{emsp.strom_endpoints['locations']}/{CP}/{CP}-2/1",
                             headers=emsp.auth)
        assert one.json()["data"]["standard"] == "IEC_62196_T2"

        # Tariffs in BTC (msat exact), the tariff the connectors name.
        tariffs = (await http.get(emsp.strom_endpoints["tariffs"], headers=emsp.auth)).json()
        tariff = tariffs["data"][0]
        assert tariff["id"] == location["evses"][0]["connectors"][0]["tariff_ids"][0]
        assert tariff["currency"] == "BTC"
        energy = next(c for e in tariff["elements"] for c in e["price_components"]
                      if c["type"] == "ENERGY")
        price = world.app.services.tariffs.current(
            await world.app.services.charge_points.get(CP))  # type: ignore[arg-type]
        assert round(energy["price"] * 10**11) == price.price_msat_per_kwh

        # A status change on the charger is PATCHed to the eMSP.
        result = await world.app.services.chargers.set_availability(CP, 2, operative=False)
        assert result.ok, result
        pushed = await eventually(lambda: _async(emsp.pushes("locations", "PATCH")),
                                  lambda p: any(b["status"] == "INOPERATIVE" for _, _, b in p))
        method, path, body = next(p for p in pushed if p[2]["status"] == "INOPERATIVE")
        assert path.endswith(f"/locations/DE/STR/{CP}/{CP}-2") and "last_updated" in body
        assert emsp.refused == [] and set(emsp.routing) == {"EMS"}
        # A charger that goes away: UNKNOWN for each of its EVSEs.
        await world.charger.drop(offline_for=5.0)
        await eventually(lambda: _async(emsp.pushes("locations", "PATCH")),
                         lambda p: {path.rsplit("/", 1)[1] for _, path, b in p
                                    if b["status"] == "UNKNOWN"} == {f"{CP}-1", f"{CP}-2"})


async def _async(value):  # noqa: ANN001, ANN202
    return value


async def test_pagination_and_request_ids(data_dir: Path) -> None:
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        for n in range(3):
            await world.app.services.charge_points.add(f"extra-{n}", name=f"X{n}", lat=1.0,
                                                       lon=2.0)
        await _registered(world, emsp)
        url = emsp.strom_endpoints["locations"]
        answer = await world.http.get(url, headers={**emsp.auth, "X-Request-ID": "r-1",
                                                    "X-Correlation-ID": "c-1"},
                                      params={"offset": 1, "limit": 2})
        assert answer.headers["X-Request-ID"] == "r-1"
        assert answer.headers["X-Correlation-ID"] == "c-1"
        assert answer.headers["X-Total-Count"] == "4"
        assert len(answer.json()["data"]) == 2
        link = answer.headers["Link"]
        assert 'rel="next"' in link and "offset=3" in link and "limit=2" in link
        last = await world.http.get(link[1:link.index(">")], headers=emsp.auth)
        assert len(last.json()["data"]) == 1 and "Link" not in last.headers
        # date_from after every change: nothing.
        none = await world.http.get(url, headers=emsp.auth,
                                    params={"date_from": "2999-01-01T00:00:00Z"})
        assert none.json()["data"] == [] and none.headers["X-Total-Count"] == "0"


async def test_bad_tokens_and_bodies_get_ocpi_codes(data_dir: Path) -> None:
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        http = world.http
        for headers in ({}, {"Authorization": "Token nope"}, {"Authorization": "Bearer x"},
                        token_header("x" * 300), {"Authorization": "Token " + "=" * 5000}):
            answer = await http.get("/ocpi/versions", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.json()["status_code"] == 2000 and "timestamp" in answer.json()
        party, token_a = await world.app.services.ocpi.parties.issue("eMSP")
        a = token_header(token_a)
        # Token A opens versions and credentials only.
        assert (await http.get("/ocpi/2.2.1/locations", headers=a)).status_code == 401
        post = "/ocpi/2.2.1/credentials"
        for body, code in ((b"{not json", 2001), (b"[]", 2001),
                           (b'{"token": "t", "url": "ftp://x", "roles": []}', 2001)):
            answer = await http.post(post, headers=a, content=body)
            assert answer.json()["status_code"] == code, answer.text
        huge = await http.post(post, headers=a, content=b"[" + b"1," * 40_000 + b"1]")
        assert huge.status_code == 413 and huge.json()["status_code"] == 2001
        no_emsp = emsp.credentials()
        no_emsp["roles"][0]["role"] = "CPO"
        assert (await http.post(post, headers=a, json=no_emsp)).json()["status_code"] == 2001
        # An eMSP whose versions URL does not answer: 3001, and token A still works.
        unreachable = {**emsp.credentials(), "url": "http://127.0.0.1:9/versions"}
        assert (await http.post(post, headers=a, json=unreachable)).json()["status_code"] == 3001
        # A versions URL that refuses the token strom was given: 3001 as well.
        wrong_b = {**emsp.credentials(), "token": "not-the-token"}
        assert (await http.post(post, headers=a, json=wrong_b)).json()["status_code"] == 3001
        await emsp.register(http, f"{world.app.http_url}/ocpi/versions", token_a)
        c = emsp.auth
        again = await http.post(post, headers=c, json=emsp.credentials())
        assert again.status_code == 405 and again.json()["status_code"] == 2000
        for path in ("/ocpi/2.2.1/locations/nowhere", f"/ocpi/2.2.1/locations/{CP}/{CP}-9",
                     f"/ocpi/2.2.1/locations/{CP}/{CP}-1/7"):
            answer = await http.get(path, headers=c)
            assert answer.status_code == 404 and answer.json()["status_code"] == 2003, path
        for params in ({"offset": "-1"}, {"limit": "x"}, {"date_from": "yesterday"}):
            answer = await http.get("/ocpi/2.2.1/locations", headers=c, params=params)
            assert answer.json()["status_code"] == 2001, params
        command = "/ocpi/2.2.1/commands/UNLOCK_CONNECTOR"
        assert (await http.post(command, headers=c, json={"location_id": CP})
                ).json()["status_code"] == 2001  # no response_url
        unknown = await http.post(command, headers=c, json={
            "response_url": f"{emsp.base}/2.2.1/commands/UNLOCK_CONNECTOR/1",
            "location_id": CP, "evse_uid": "zz"})
        assert unknown.json()["status_code"] == 2003
        # PUT renews token C; the old one stops working.
        old = c
        renewed = await http.put(post, headers=old, json=emsp.credentials())
        assert renewed.json()["status_code"] == 1000
        assert (await http.get("/ocpi/versions", headers=old)).status_code == 401
        new = token_header(renewed.json()["data"]["token"])
        # DELETE unregisters: every token stops working.
        assert (await http.delete(post, headers=new)).json()["status_code"] == 1000
        assert (await http.get("/ocpi/versions", headers=new)).status_code == 401
        assert (await world.app.services.ocpi.parties.get(party.id)).state == "unregistered"  # type: ignore[union-attr]


async def test_unlock_command_result_is_posted(data_dir: Path) -> None:
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        await _registered(world, emsp)
        response_url = f"{emsp.base}/2.2.1/commands/UNLOCK_CONNECTOR/u-1"
        answer = await world.http.post(
            "/ocpi/2.2.1/commands/UNLOCK_CONNECTOR", headers=emsp.auth,
            json={"response_url": response_url, "location_id": CP, "evse_uid": f"{CP}-1",
                  "connector_id": "1"})
        assert answer.json()["data"]["result"] == "ACCEPTED", answer.text
        results = await eventually(lambda: _async(emsp.pushes("commands", "POST")),
                                   lambda r: len(r) == 1)
        assert results[0][1].endswith("/commands/UNLOCK_CONNECTOR/u-1")
        assert results[0][2]["result"] == "ACCEPTED"


def test_token_header_is_base64() -> None:
    assert token_header("abc")["Authorization"] == "Token " + base64.b64encode(b"abc").decode()
    assert httpx  # the eMSP's client


async def test_operator_manages_parties_from_the_shell(data_dir: Path) -> None:
    """`strom ocpi add` issues token A (stored hashed), `list` shows the registration,
    `remove` locks the party out of the running server at once."""
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        added = await asyncio.to_thread(strom, "ocpi", "add", "Test eMSP", data_dir=data_dir)
        assert added.returncode == 0, added.stderr
        token_a = next(line.split()[-1] for line in added.stdout.splitlines()
                       if line.startswith("token A:"))
        rows = await world.app.services.db.fetchall("SELECT * FROM ocpi_parties")
        assert token_a not in repr([tuple(row) for row in rows])  # only its hash
        await emsp.register(world.http, f"{world.app.http_url}/ocpi/versions", token_a)
        listed = await asyncio.to_thread(strom, "ocpi", "list", "--json", data_dir=data_dir)
        [party] = json.loads(listed.stdout)
        assert (party["state"], party["country_code"], party["party_id"]) == (
            "registered", "NL", "EMS")
        assert "locations" in party["modules"] and not {"token", "token_b"} & set(party)
        assert emsp.token_b not in listed.stdout
        removed = await asyncio.to_thread(strom, "ocpi", "remove", str(party["id"]),
                                          data_dir=data_dir)
        assert removed.returncode == 0, removed.stderr
        assert (await world.http.get("/ocpi/versions", headers=emsp.auth)).status_code == 401
        again = await asyncio.to_thread(strom, "ocpi", "remove", str(party["id"]),
                                        data_dir=data_dir)
        assert again.returncode == 1 and again.stderr.count("\n") == 1


async def test_start_session_by_command_to_cdr_equal_to_the_ledger(data_dir: Path) -> None:
    """START_SESSION → the charger starts → Session pushes → STOP_SESSION → CDR whose total
    is what the roaming book holds; the ledger check stays true."""
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        await _registered(world, emsp)
        http, ocpi = world.http, world.app.services.ocpi
        token = {"country_code": "NL", "party_id": "EMS", "uid": "CARD-0001", "type": "RFID",
                 "contract_id": "NL-EMS-C00001234-X", "issuer": "Test eMSP", "valid": True,
                 "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"}
        start_url = f"{emsp.base}/2.2.1/commands/START_SESSION/s-1"
        answer = await http.post("/ocpi/2.2.1/commands/START_SESSION", headers=emsp.auth, json={
            "response_url": start_url, "token": token, "location_id": CP,
            "evse_uid": f"{CP}-1", "connector_id": "1", "authorization_reference": "auth-1"})
        assert answer.json()["data"] == {"result": "ACCEPTED", "timeout": 30}, answer.text
        results = await eventually(lambda: _async(emsp.pushes("commands")),
                                   lambda r: len(r) == 1)
        assert results[0][1].endswith("/START_SESSION/s-1") and results[0][2]["result"] == \
            "ACCEPTED"
        # The charger charges; the eMSP gets the Session while it charges.
        await world.charger.wait_for(lambda: world.charger.transaction_id(1) is not None)
        pushed = await eventually(lambda: _async(emsp.pushes("sessions", "PUT")),
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
        cdrs = await eventually(lambda: _async(emsp.pushes_to("cdrs", "POST")),
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
        await _registered(world, emsp)
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


async def test_emsp_tokens_start_a_charger_billed_to_the_emsp(data_dir: Path) -> None:
    """The eMSP's token list: a whitelisted card starts at the reader, a NEVER-whitelisted one
    is asked about in real time, an invalid one is Blocked; the CDR goes to the eMSP."""
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        await _registered(world, emsp)
        http = world.http
        await world.app.services.charge_points.add("rfid-1", name="Reader", lat=1.0, lon=2.0,
                                                   num_connectors=2)
        url = emsp.strom_endpoints["tokens"] + "/NL/EMS"
        for uid, whitelist, valid in (("RFID-OK", "ALLOWED", True), ("RFID-RT", "NEVER", True),
                                      ("RFID-NO", "NEVER", True), ("RFID-OLD", "ALWAYS", False)):
            put = await http.put(f"{url}/{uid}", headers=emsp.auth,
                                 json=emsp.token(uid, whitelist, valid))
            assert put.json()["status_code"] == 1000, put.text
        emsp.realtime["RFID-RT"] = "ALLOWED"
        # Bad tokens: another party's path, a uid unlike the URL's, nonsense, PATCH unknown.
        other = await http.put(f"{emsp.strom_endpoints['tokens']}/DE/XYZ/A1", headers=emsp.auth,
                               json=emsp.token("A1"))
        assert other.json()["status_code"] == 2001
        assert (await http.put(f"{url}/OTHER", headers=emsp.auth, json=emsp.token("X"))
                ).json()["status_code"] == 2001
        assert (await http.put(f"{url}/X", headers=emsp.auth, json={"uid": "X"})
                ).json()["status_code"] == 2001
        assert (await http.patch(f"{url}/NOPE", headers=emsp.auth,
                                 json={"valid": False, "last_updated": "2026-01-02T00:00:00Z"})
                ).status_code == 404
        got = await http.get(f"{url}/RFID-OK", headers=emsp.auth)
        assert got.json()["data"]["whitelist"] == "ALLOWED"
        async with running_charger(world.app.services.central_system.url, "rfid-1",
                                   charger_class=CardCharger) as charger:
            assert await charger.tap(1, "RFID-OLD") == ("Blocked", "")
            assert await charger.tap(1, "RFID-NO") == ("Invalid", "")
            assert await charger.tap(1, "RFID-RT") == ("Accepted", "Accepted")
            await charger.meter(1, 1500.0, 11_000.0)
            charger.energy_wh[1] = 2000.0
            await charger.stop(1)
            cdrs = await eventually(lambda: _async(emsp.pushes_to("cdrs", "POST")),
                                    lambda c: len(c) == 1)
            cdr = cdrs[0][2]
            assert cdr["cdr_token"]["uid"] == "RFID-RT" and cdr["total_energy"] == 2.0
            assert cdr["authorization_reference"] == "rt-RFID-RT"
            # A PATCH blocks a token from then on.
            patched = await http.patch(f"{url}/RFID-OK", headers=emsp.auth, json={
                "valid": False, "last_updated": "2026-01-02T00:00:00Z"})
            assert patched.json()["status_code"] == 1000
            assert await charger.tap(2, "RFID-OK") == ("Blocked", "")
        check = (await http.get("/api/v1/ledger/check", headers=world.admin)).json()
        assert check["ok"] and check["roaming_owed_msat"] == cdr["strom_cost_msat"] > 0


async def test_operator_manages_parties_over_the_admin_api(data_dir: Path) -> None:
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        http = world.http
        assert (await http.post("/api/v1/ocpi/parties", json={"name": "x"})).status_code == 401
        bad = await http.post("/api/v1/ocpi/parties", headers=world.admin, json={"name": ""})
        assert bad.status_code == 422
        issued = await http.post("/api/v1/ocpi/parties", headers=world.admin,
                                 json={"name": "Test eMSP"})
        assert issued.status_code == 201, issued.text
        body = issued.json()
        assert body["versions_url"].endswith("/ocpi/versions")
        await emsp.register(http, f"{world.app.http_url}/ocpi/versions", body["token_a"])
        listed = (await http.get("/api/v1/ocpi/parties", headers=world.admin)).json()
        assert [(p["state"], p["party_id"]) for p in listed["items"]] == [("registered", "EMS")]
        assert emsp.token_b not in json.dumps(listed)
        gone = await http.delete(f"/api/v1/ocpi/parties/{body['party']['id']}",
                                 headers=world.admin)
        assert gone.status_code == 204
        assert (await http.get("/ocpi/versions", headers=emsp.auth)).status_code == 401
        for missing in ("999", "abc"):
            answer = await http.delete(f"/api/v1/ocpi/parties/{missing}", headers=world.admin)
            assert answer.status_code == 404


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
        await _registered(world, emsp)
        await world.app.services.charge_points.add("nocar", name="Lot", lat=1.0, lon=2.0)
        token = emsp.token("APP-1", "ALLOWED")
        async with running_charger(world.app.services.central_system.url, "nocar",
                                   connectors=1, charger_class=NoCarCharger) as charger:
            await charger.status(1, "Available")
            await eventually(lambda: world.app.services.charge_points.get("nocar"),
                             lambda cp: cp is not None and cp.connectors[-1].status == "Available")
            answer = await world.http.post(
                "/ocpi/2.2.1/commands/START_SESSION", headers=emsp.auth, json={
                    "response_url": f"{emsp.base}/2.2.1/commands/START_SESSION/n-1",
                    "token": token, "location_id": "nocar", "evse_uid": "nocar-1"})
            assert answer.json()["data"]["result"] == "ACCEPTED"
            pushed = await eventually(lambda: _async(emsp.pushes("sessions", "PUT")),
                                      lambda p: any(b["status"] == "INVALID" for _, _, b in p))
            assert [b["kwh"] for _, _, b in pushed] == [0]
            # Charging (here: another driver's car) is no EVSE to start on.
            await charger.status(1, "Charging")
            await eventually(lambda: world.app.services.charge_points.get("nocar"),
                             lambda cp: cp is not None and cp.connectors[-1].status == "Charging")
            busy = await world.http.post(
                "/ocpi/2.2.1/commands/START_SESSION", headers=emsp.auth, json={
                    "response_url": f"{emsp.base}/2.2.1/commands/START_SESSION/n-2",
                    "token": token, "location_id": "nocar", "evse_uid": "nocar-1"})
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
                    answer = await http.post(
                        "/ocpi/2.2.1/commands/START_SESSION", headers=emsp.auth, json={
                            "response_url": f"{emsp.base}/2.2.1/commands/START_SESSION/r",
                            "token": emsp.token("APP-2"), "location_id": "rs",
                            "evse_uid": "rs-1"})
                    assert answer.json()["data"]["result"] == "ACCEPTED"
                    await eventually(lambda: _async(dict(charger.transactions)),
                                     lambda t: 1 in t)
                    await charger.meter(1, 1000.0, 7000.0)
                    await eventually(lambda: _async(emsp.pushes("sessions", "PUT")),
                                     lambda p: any(b["kwh"] == 1.0 for _, _, b in p))
                    kept = dict(charger.transactions)
        async with StromApp(free_settings(**FAST_PUSH), data_dir) as app:
            async with running_charger(app.services.central_system.url, "rs",
                                       connectors=1, charger_class=TestCharger) as charger:
                charger.transactions = kept
                await charger.meter(1, 2500.0, 7000.0)
                await charger._stop(kept[1])
                cdrs = await eventually(lambda: _async(emsp.pushes_to("cdrs", "POST")),
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


NASTY = [b"", b"null", b"0", b"-1e999", b'"x"', b"[]", b"{}", b"[[[[[[[[[[]]]]]]]]]]",
         b'{"token": null}', b'{"token": {"uid": 5}}', b'{"response_url": 5}',
         b'{"response_url": "http://\\u0000/"}', b'{"location_id": {"a": 1}, "evse_uid": []}',
         b'{"amount_msat": true}', b'{"amount_msat": 1e30}', b'{"invoice": ["lnbc"]}',
         b'{"uid": "\\ud800"}', b"\xff\xfe", b'{"last_updated": 1, "valid": "yes"}',
         '{"session_id": "é€😀"}'.encode()]


async def test_nonsense_bodies_get_ocpi_answers_never_a_500(data_dir: Path) -> None:
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        await _registered(world, emsp)
        targets = [("POST", "/ocpi/2.2.1/credentials"), ("PUT", "/ocpi/2.2.1/credentials"),
                   ("POST", "/ocpi/2.2.1/commands/START_SESSION"),
                   ("POST", "/ocpi/2.2.1/commands/STOP_SESSION"),
                   ("POST", "/ocpi/2.2.1/commands/UNLOCK_CONNECTOR"),
                   ("POST", "/ocpi/2.2.1/commands/RESERVE_NOW"),
                   ("POST", "/ocpi/2.2.1/commands/CANCEL_RESERVATION"),
                   ("PUT", "/ocpi/2.2.1/tokens/NL/EMS/T-1"),
                   ("PATCH", "/ocpi/2.2.1/tokens/NL/EMS/T-1"),
                   ("POST", "/ocpi/2.2.1/lightning/sessions"),
                   ("POST", "/ocpi/2.2.1/lightning/sessions/nope/refund")]
        for method, path in targets:
            for body in NASTY:
                answer = await world.http.request(method, path, headers=emsp.auth,
                                                  content=body)
                assert answer.status_code < 500, (method, path, body, answer.text)
                envelope = answer.json()
                assert envelope["status_code"] in (1000, 2000, 2001, 2003), (path, body, envelope)
                assert "timestamp" in envelope
        await world.ledger_ok()
