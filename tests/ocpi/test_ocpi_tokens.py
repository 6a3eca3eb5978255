"""The eMSP's token list (OCPI Tokens module, receiver side): a whitelisted card starts at the
reader, a NEVER-whitelisted one is asked about in real time, an invalid one is Blocked; the CDR
goes to the eMSP."""

from __future__ import annotations

from pathlib import Path

from tests.api.charger import running_charger
from tests.cards.charger import CardCharger
from tests.doubles.emsp import Emsp
from tests.money.conftest import running_world
from tests.ocpi.conftest import FAST_PUSH, at_once, registered
from tests.polling import eventually


async def test_emsp_tokens_start_a_charger_billed_to_the_emsp(data_dir: Path) -> None:
    """The eMSP's token list: a whitelisted card starts at the reader, a NEVER-whitelisted one
    is asked about in real time, an invalid one is Blocked; the CDR goes to the eMSP."""
    async with running_world(data_dir, **FAST_PUSH) as world, Emsp().running() as emsp:
        await registered(world, emsp)
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
            cdrs = await eventually(lambda: at_once(emsp.pushes_to("cdrs", "POST")),
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
