"""`/healthz` over real HTTP: every part of the built container, and the nostr bots only
through `NostrStatus` (the core names no interface)."""

from __future__ import annotations

from pathlib import Path

import httpx

from strom.app import StromApp
from tests.conftest import free_settings


async def test_health_shows_every_part_and_the_bots_identities(data_dir: Path) -> None:
    async with StromApp(free_settings(), data_dir) as app:
        assert app.relay is not None
        async with httpx.AsyncClient(base_url=app.http_url) as http:
            health = (await http.get("/healthz")).json()
    assert health["status"] == "ok"
    checks = health["checks"]
    assert checks["store"] == "ok" and checks["ocpp"] == {"connected": 0}
    assert checks["lightning"] == {"backend": "dev", "reachable": True}
    assert checks["relay"]["url"] == app.relay.url
    assert checks["nostr"]["identities"] == 0  # the bots run; no charge point yet
    assert [r["url"] for r in checks["nostr"]["relays"]] == [app.relay.url]
    # (one that is on nostr counts: tests/e2e/test_demo.py)
    assert "tls" not in checks


async def test_without_relays_there_is_no_nostr_and_the_rest_is_whole(data_dir: Path) -> None:
    async with StromApp(free_settings(relay={"embedded": False}), data_dir) as app:
        assert app.relay is None
        async with httpx.AsyncClient(base_url=app.http_url) as http:
            health = (await http.get("/healthz")).json()
            names = (await http.get("/.well-known/nostr.json")).json()
    assert health["status"] == "ok"
    assert set(health["checks"]) == {"store", "ocpp", "lightning"}
    assert names == {"names": {}, "relays": {}}
