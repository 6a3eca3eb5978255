"""strom as an OCPI 2.2.1 CPO against an eMSP written from the spec (tests/doubles/emsp.py),
the protocol itself: the credentials handshake, pulls with pagination and request ids, status
pushes, a command with its async result, and bad tokens and bodies answered with OCPI status
codes, never a 500."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from tests.doubles.emsp import Emsp, token_header
from tests.money.conftest import CP, running_world
from tests.ocpi.conftest import FAST_PUSH, at_once, registered
from tests.polling import eventually


async def test_handshake_pull_and_status_push(data_dir: Path) -> None:
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        token_a = await registered(world, emsp)
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
        pushed = await eventually(lambda: at_once(emsp.pushes("locations", "PATCH")),
                                  lambda p: any(b["status"] == "INOPERATIVE" for _, _, b in p))
        method, path, body = next(p for p in pushed if p[2]["status"] == "INOPERATIVE")
        assert path.endswith(f"/locations/DE/STR/{CP}/{CP}-2") and "last_updated" in body
        assert emsp.refused == [] and set(emsp.routing) == {"EMS"}
        # A charger that goes away: UNKNOWN for each of its EVSEs.
        await world.charger.drop(offline_for=5.0)
        await eventually(lambda: at_once(emsp.pushes("locations", "PATCH")),
                         lambda p: {path.rsplit("/", 1)[1] for _, path, b in p
                                    if b["status"] == "UNKNOWN"} == {f"{CP}-1", f"{CP}-2"})



async def test_pagination_and_request_ids(data_dir: Path) -> None:
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        for n in range(3):
            await world.app.services.charge_points.add(f"extra-{n}", name=f"X{n}", lat=1.0,
                                                       lon=2.0)
        await registered(world, emsp)
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
        await registered(world, emsp)
        response_url = f"{emsp.base}/2.2.1/commands/UNLOCK_CONNECTOR/u-1"
        answer = await world.http.post(
            "/ocpi/2.2.1/commands/UNLOCK_CONNECTOR", headers=emsp.auth,
            json={"response_url": response_url, "location_id": CP, "evse_uid": f"{CP}-1",
                  "connector_id": "1"})
        assert answer.json()["data"]["result"] == "ACCEPTED", answer.text
        results = await eventually(lambda: at_once(emsp.pushes("commands", "POST")),
                                   lambda r: len(r) == 1)
        assert results[0][1].endswith("/commands/UNLOCK_CONNECTOR/u-1")
        assert results[0][2]["result"] == "ACCEPTED"



def test_token_header_is_base64() -> None:
    assert token_header("abc")["Authorization"] == "Token " + base64.b64encode(b"abc").decode()
    assert httpx  # the eMSP's client



NASTY = [b"", b"null", b"0", b"-1e999", b'"x"', b"[]", b"{}", b"[[[[[[[[[[]]]]]]]]]]",
         b'{"token": null}', b'{"token": {"uid": 5}}', b'{"response_url": 5}',
         b'{"response_url": "http://\\u0000/"}', b'{"location_id": {"a": 1}, "evse_uid": []}',
         b'{"amount_msat": true}', b'{"amount_msat": 1e30}', b'{"invoice": ["lnbc"]}',
         b'{"uid": "\\ud800"}', b"\xff\xfe", b'{"last_updated": 1, "valid": "yes"}',
         '{"session_id": "é€😀"}'.encode()]



async def test_nonsense_bodies_get_ocpi_answers_never_a_500(data_dir: Path) -> None:
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        await registered(world, emsp)
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
