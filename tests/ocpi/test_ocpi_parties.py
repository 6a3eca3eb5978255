"""The operator manages OCPI parties (token A, the list, removal) from the shell and over the
admin API; a removed party is locked out of the running server at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.doubles.emsp import Emsp
from tests.e2e.test_cli_basics import strom
from tests.money.conftest import running_world
from tests.ocpi.conftest import FAST_PUSH


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
