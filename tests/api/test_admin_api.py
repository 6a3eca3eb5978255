"""The admin REST API over real HTTP against a running strom, with a real OCPP charger."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

from strom.app import StromApp
from strom.events import ConnectorStatusChanged
from strom.logsetup import install_bus_log_handler
from strom.web.openapi_ops import OPERATIONS
from tests.api.charger import running_charger
from tests.api.conftest import add, ocpp_url
from tests.api.flows import eventually, pay_and_charge

PARAMS = {"cp_id": "cp-1", "session_id": "nope", "token": "nope", "target": "cp-1",
          "id_tag": "nope", "account_id": "nope", "diagnostics_id": "1", "request_id": "1",
          "site_id": "home", "party_id": "1"}


# --- auth and the document ----------------------------------------------------------------


async def test_every_admin_route_needs_the_token(app: StromApp, admin: httpx.AsyncClient) -> None:
    await add(admin)
    admin_ops = [op for op in OPERATIONS if op.admin]
    assert len(admin_ops) >= 25
    async with httpx.AsyncClient(base_url=app.http_url, timeout=10) as anonymous:
        for op in admin_ops:
            path = op.path.format(**PARAMS)
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Authorization": f"Basic {app.services.admin_token}"}):
                answer = await anonymous.request(op.method, path, headers=headers, json={})
                assert answer.status_code == 401, (op.method, path, headers, answer.text)
                assert answer.json()["error"].startswith("missing or wrong admin token")
    # Nothing was changed by the refused requests.
    assert (await admin.get("/api/v1/charge-points/cp-1")).status_code == 200


async def test_openapi_documents_every_api_route(app: StromApp) -> None:
    async with httpx.AsyncClient(base_url=app.http_url) as http:
        doc = (await http.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    served: set[tuple[str, str]] = set()
    for route in app.http._server.config.app.routes:  # type: ignore[union-attr]
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                served.add((route.path, method.lower()))
    api = {(p, m) for p, m in served if p.startswith("/api/v1/") or "lnurl" in p}
    assert api - documented == set(), "undocumented API routes"
    assert documented - served == set(), "documented routes that do not exist"
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            admin = path.startswith("/api/v1/") and not path.startswith(
                ("/api/v1/public/", "/api/v1/openapi"))
            assert (operation["security"] != []) == admin, (method, path)
    create = doc["paths"]["/api/v1/charge-points"]["post"]["requestBody"]
    assert create["content"]["application/json"]["schema"]["$ref"].endswith("ChargePointCreate")
    assert "ChargePointCreate" in doc["components"]["schemas"]


# --- charge points ------------------------------------------------------------------------


async def test_charge_point_crud(app: StromApp, admin: httpx.AsyncClient) -> None:
    created = await add(admin, name="Market Square", password="a-long-enough-secret",
                        tariff={"price_msat_per_kwh": 250_000})
    assert created["name"] == "Market Square" and created["npub"].startswith("npub1")
    assert created["has_password"] is True and created["status"] == "Offline"
    assert created["tariff"]["price_msat_per_kwh"] == 250_000
    assert created["tariff_override"] == {"price_msat_per_kwh": 250_000}
    assert "a-long-enough-secret" not in json.dumps(created)

    again = await admin.post("/api/v1/charge-points", json={"id": "cp-1", "lat": 1, "lon": 1})
    assert again.status_code == 409 and "already exists" in again.json()["error"]

    patched = await admin.patch("/api/v1/charge-points/cp-1",
                                json={"name": "Town Hall", "password": None, "tariff": None})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["has_password"], body["tariff_override"]) == ("Town Hall", False, {})
    assert body["tariff"]["price_msat_per_kwh"] == 300_000  # the default again
    unchanged = await admin.patch("/api/v1/charge-points/cp-1", json={})
    assert unchanged.json()["name"] == "Town Hall"

    assert (await admin.delete("/api/v1/charge-points/cp-1")).status_code == 204
    assert (await admin.get("/api/v1/charge-points/cp-1")).status_code == 404
    assert (await admin.delete("/api/v1/charge-points/cp-1")).status_code == 404
    assert (await admin.get("/api/v1/keys/cp-1")).status_code == 404  # its key went with it


async def test_pagination(admin: httpx.AsyncClient) -> None:
    for n in range(5):
        await add(admin, f"cp-{n}")
    page = (await admin.get("/api/v1/charge-points", params={"limit": 2, "offset": 2})).json()
    assert [c["id"] for c in page["items"]] == ["cp-2", "cp-3"]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    last = (await admin.get("/api/v1/charge-points", params={"offset": 4})).json()
    assert [c["id"] for c in last["items"]] == ["cp-4"]
    for path in ("/api/v1/keys", "/api/v1/tariffs", "/api/v1/sessions"):
        listed = (await admin.get(path, params={"limit": 3})).json()
        assert listed["limit"] == 3 and len(listed["items"]) <= 3, path
    assert (await admin.get("/api/v1/keys", params={"limit": 3})).json()["total"] == 5
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"}):
        answer = await admin.get("/api/v1/charge-points", params=bad)
        assert answer.status_code == 422, bad
        assert answer.json()["fields"][0]["loc"][0] == "query"


async def test_validation_errors_name_each_field(admin: httpx.AsyncClient) -> None:
    answer = await admin.post("/api/v1/charge-points", json={
        "id": "bad id!", "lat": 91, "lon": "east", "connectors": 0, "password": "short",
        "colour": "red", "tariff": {"min_prepay_msat": 5}})
    assert answer.status_code == 422
    body = answer.json()
    where = {tuple(f["loc"]) for f in body["fields"]}
    assert where >= {("body", "id"), ("body", "lat"), ("body", "lon"), ("body", "connectors"),
                     ("body", "password"), ("body", "colour"),
                     ("body", "tariff", "min_prepay_msat")}
    assert all(isinstance(f["msg"], str) and f["msg"] for f in body["fields"])
    assert "short" not in answer.text  # the values given are not echoed
    for raw in (b"not json", b"[1, 2]", b'{"id": "x", "lat": true, "lon": 1}'):
        bad = await admin.post("/api/v1/charge-points", content=raw)
        assert bad.status_code == 422 and bad.json()["fields"], raw
    whole = await admin.post("/api/v1/charge-points",
                             json={"id": "cp-w", "lat": 1, "lon": 2, "connectors": 2.0})
    assert whole.status_code == 201 and whole.json()["num_connectors"] == 2
    huge = await admin.post("/api/v1/charge-points", content=b'{"id": "' + b"x" * 70_000 + b'"}')
    assert huge.status_code == 413


async def test_unexpected_errors_are_json_500_without_traceback(
        app: StromApp, admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    assert app.services is not None

    async def broken() -> list[Any]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app.services.charge_points, "list", broken)
    answer = await admin.get("/api/v1/charge-points")
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error"}
    assert "disk on fire" not in answer.text and "Traceback" not in answer.text
    assert any("internal error in GET list_charge_points" in r.getMessage()
               for r in caplog.records)


# --- tariffs ------------------------------------------------------------------------------


async def test_tariff_override(admin: httpx.AsyncClient) -> None:
    await add(admin)
    put = await admin.put("/api/v1/tariffs/cp-1", json={"price_msat_per_kwh": 420_000,
                                                        "session_fee_msat": 5000})
    assert put.status_code == 200, put.text
    assert put.json()["current"]["price_msat_per_kwh"] == 420_000
    public = (await admin.get("/api/v1/public/charge-points/cp-1")).json()
    assert public["tariff"]["session_fee_msat"] == 5000  # drivers see the new price
    listing = (await admin.get("/api/v1/tariffs")).json()
    assert listing["default"]["price_msat_per_kwh"] == 300_000
    assert listing["items"][0]["override"] == {"price_msat_per_kwh": 420_000,
                                               "session_fee_msat": 5000}
    unpayable = await admin.put("/api/v1/tariffs/cp-1", json={"session_fee_msat": 100_000_000})
    assert unpayable.status_code == 422 and "session fee" in unpayable.json()["error"]
    crossed = await admin.put("/api/v1/tariffs/cp-1", json={"min_prepay_msat": 9000,
                                                           "max_prepay_msat": 8000})
    assert crossed.status_code == 422
    cleared = await admin.delete("/api/v1/tariffs/cp-1")
    assert cleared.json()["override"] == {}
    assert (await admin.put("/api/v1/tariffs/nope", json={})).status_code == 404


# --- commands -----------------------------------------------------------------------------


async def test_commands_reach_the_charger(app: StromApp, admin: httpx.AsyncClient) -> None:
    await add(admin)
    async with running_charger(ocpp_url(app), "cp-1") as charger:
        cmd = "/api/v1/commands/cp-1/"
        answers = [
            await admin.post(cmd + "reset", json={"type": "Hard"}),
            await admin.post(cmd + "unlock", json={"connector_id": 2}),
            await admin.post(cmd + "trigger", json={"message": "StatusNotification",
                                                    "connector_id": 1}),
            await admin.post(cmd + "availability", json={"connector_id": 0, "operative": False}),
        ]
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
        assert [a.json()["status"] for a in answers] == ["Accepted", "Unlocked", "Accepted",
                                                         "Accepted"]
        assert {a.json()["outcome"] for a in answers} == {"accepted"}
        assert charger.asked == [
            ("Reset", {"type": "Hard"}), ("UnlockConnector", {"connector_id": 2}),
            ("TriggerMessage", {"requested_message": "StatusNotification", "connector_id": 1}),
            ("ChangeAvailability", {"connector_id": 0, "type": "Inoperative"})]
        # Every command that reached the charger is audited: what, with what, by whom, answer.
        assert app.services is not None
        audit = [e["payload"] for e in await app.services.event_log.recent("cp-1")
                 if e["kind"] == "operator_command"]
        assert [(e["command"], e["status"], e["outcome"], e["by"]) for e in reversed(audit)] == [
            ("reset", "Accepted", "accepted", "admin api"),
            ("unlock", "Unlocked", "accepted", "admin api"),
            ("trigger", "Accepted", "accepted", "admin api"),
            ("availability", "Accepted", "accepted", "admin api")]
        assert audit[0]["args"] == {"connector_id": 0, "operative": False}

        limit = await admin.post(cmd + "limit", json={"connector_id": 1, "watts": 7400})
        assert limit.json() == {"cp_id": "cp-1", "command": "limit", "status": "Accepted",
                                "outcome": "accepted"}
        profile = charger.asked.pop()[1]
        assert profile["connector_id"] == 1
        # (the charger's library checked the profile against the OCPP 1.6 schema)
        assert profile["cs_charging_profiles"]["charging_profile_purpose"] == "TxDefaultProfile"
        schedule = profile["cs_charging_profiles"]["charging_schedule"]
        assert (schedule["charging_rate_unit"], schedule["charging_schedule_period"]) == (
            "W", [{"start_period": 0, "limit": 7400.0}])
        lifted = await admin.post(cmd + "limit", json={"connector_id": 1, "watts": None})
        assert lifted.json()["outcome"] == "accepted"  # "Unknown": no cap of strom's was set
        assert charger.asked.pop()[0] == "ClearChargingProfile"
        absurd = await admin.post(cmd + "limit", json={"connector_id": 1, "watts": -5})
        assert absurd.status_code == 422 and absurd.json()["fields"][0]["loc"] == [
            "body", "watts"]

        wrong = await admin.post(cmd + "unlock", json={"connector_id": 3})
        assert wrong.status_code == 422 and wrong.json()["fields"][0]["loc"] == [
            "body", "connector_id"]
        unknown = await admin.post(cmd + "trigger", json={"message": "Coffee"})
        assert unknown.status_code == 422
        assert len(charger.asked) == 4  # nothing invalid reached the charger

        charger.mode = "refuse"
        refused = await admin.post(cmd + "reset", json={})
        assert refused.status_code == 502
        assert refused.json()["code"] == "NotImplemented"
        charger.mode = "slow"
        slow = await admin.post(cmd + "reset", json={})
        assert slow.status_code == 504 and "did not answer" in slow.json()["error"]

    central = app.services.central_system  # type: ignore[union-attr]
    await eventually(lambda: not central.is_connected("cp-1"))
    offline = await admin.post("/api/v1/commands/cp-1/reset", json={})
    assert offline.status_code == 409 and "not connected" in offline.json()["error"]
    missing = await admin.post("/api/v1/commands/nope/reset", json={})
    assert missing.status_code == 404
    assert (await admin.post("/api/v1/commands/cp-1/explode", json={})).status_code == 404


# --- sessions, ledger and the live stream -------------------------------------------------


async def test_session_ledger_and_stop_with_a_real_charger(app: StromApp,
                                                           admin: httpx.AsyncClient) -> None:
    await add(admin)
    async with running_charger(ocpp_url(app), "cp-1") as charger:
        session = await pay_and_charge(admin, charger, "cp-1", amount_msat=2_000_000,
                                       energy_wh=1500, power_w=7400)
        cp = (await admin.get("/api/v1/charge-points/cp-1")).json()
        assert cp["connectors"][0]["status"] == "Charging" and cp["power_w"] == 7400
        assert cp["sessions"][0]["id"] == session["id"]
        assert cp["earned_today_msat"] == 450_000  # 1.5 kWh at 300 sat/kWh
        # This charger answers no GetConfiguration: the operator sees why its metering is as is.
        assert "NotImplemented" in cp["metering"]["failed"]["GetConfiguration"]
        busy = await admin.delete("/api/v1/charge-points/cp-1")
        assert busy.status_code == 409 and "running session" in busy.json()["error"]

        filtered = (await admin.get("/api/v1/sessions", params={"state": "charging"})).json()
        assert filtered["total"] == 1 and filtered["items"][0]["id"] == session["id"]
        assert (await admin.get("/api/v1/sessions", params={"state": "paid"})).json()["total"] == 0
        assert (await admin.get("/api/v1/sessions", params={"state": "bogus"})).status_code == 422

        stopped = await admin.post(f"/api/v1/sessions/{session['id']}/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["state"] == "stopped"
        assert stopped.json()["refundable_msat"] == 2_000_000 - 450_000
        again = await admin.post(f"/api/v1/sessions/{session['id']}/stop")
        assert again.status_code == 409

    summary = (await admin.get("/api/v1/ledger")).json()
    assert summary["sessions"] == 1 and summary["received_msat"] == 2_000_000
    assert summary["received_msat"] == (summary["consumed_msat"] + summary["refunded_msat"]
                                        + summary["forfeited_msat"] + summary["refundable_msat"])
    assert summary["earned_today_by_cp"] == {"cp-1": summary["consumed_msat"]}
    check = await admin.get("/api/v1/ledger/check")
    assert check.status_code == 200 and check.json()["ok"] is True


async def read_events(response: httpx.Response, into: list[tuple[str, Any]],
                      ready: asyncio.Event) -> None:
    name = None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            into.append((name, json.loads(line[6:])))
            if name == "ready":
                ready.set()


async def test_stream_sends_chargers_sessions_and_log_lines(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    assert app.services is not None
    remove = install_bus_log_handler(app.services.bus)
    logging.getLogger("strom.test").setLevel(logging.INFO)
    await add(admin)
    events: list[tuple[str, Any]] = []
    ready = asyncio.Event()
    try:
        async with admin.stream("GET", "/api/v1/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = asyncio.create_task(read_events(response, events, ready))
            await asyncio.wait_for(ready.wait(), 5)
            app.services.bus.publish(ConnectorStatusChanged("cp-1", 1, "Faulted"))
            logging.getLogger("strom.test").info("operator looked at %s", "cp-1")
            async with running_charger(ocpp_url(app), "cp-1") as charger:
                await pay_and_charge(admin, charger, "cp-1")
                await eventually(lambda: any(
                    n == "charge_point" and d["connectors"][0]["status"] == "Charging"
                    for n, d in events))
                reader.cancel()
    finally:
        remove()
    names = {name for name, _ in events}
    assert {"ready", "charge_point", "session", "log"} <= names
    assert any(n == "log" and d["message"] == "operator looked at cp-1"
               and d["logger"] == "strom.test" for n, d in events)
    charger_views = [d for n, d in events if n == "charge_point"]
    assert charger_views[0]["id"] == "cp-1" and "earned_today_msat" in charger_views[0]
    # The view is read from the store when the event comes: first offline, later charging.
    assert charger_views[0]["connectors"][0]["status"] == "Offline"
    assert charger_views[-1]["connectors"][0]["status"] == "Charging"

    only_log = await admin.get("/api/v1/stream", params={"topics": "coffee"})
    assert only_log.status_code == 422


async def test_ocpp_protocols_and_security_profile_are_set_and_shown(
        admin: httpx.AsyncClient) -> None:
    pin = "ab" * 32
    created = await admin.post("/api/v1/charge-points", json={
        "id": "cp-sec", "lat": 1, "lon": 1, "ocpp_protocols": ["ocpp1.6", "ocpp2.0.1"],
        "security_profile": 3, "client_cert_sha256": pin.upper()})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["ocpp_protocols"] == ["ocpp2.0.1", "ocpp1.6"]  # strom's order of preference
    assert body["ocpp_protocol"] is None  # not connected yet
    assert (body["security_profile"], body["client_cert_sha256"]) == (3, pin)
    patched = (await admin.patch("/api/v1/charge-points/cp-sec", json={
        "ocpp_protocols": None, "security_profile": 2, "client_cert_sha256": None})).json()
    assert patched["ocpp_protocols"] == ["ocpp2.1", "ocpp2.0.1", "ocpp1.6"]
    assert (patched["security_profile"], patched["client_cert_sha256"]) == (2, None)
    assert body["boot"] == "Accepted"
    rejected = (await admin.patch("/api/v1/charge-points/cp-sec", json={"boot": "Rejected"}))
    assert rejected.json()["boot"] == "Rejected"
    for bad in ({"ocpp_protocols": ["ocpp3"]}, {"ocpp_protocols": []},
                {"security_profile": 4}, {"client_cert_sha256": "xyz"}, {"boot": "Pending"}):
        answer = await admin.patch("/api/v1/charge-points/cp-sec", json=bad)
        assert answer.status_code == 422, bad
