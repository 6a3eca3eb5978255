"""The `upstream` setting through the admin API and the CLI, and the bounds of the queue."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from click.testing import CliRunner

from strom.app import StromApp
from strom.cli import cli
from strom.config import PassthroughSettings
from strom.errors import UserError
from strom.passthrough.config import UpstreamConfig
from strom.passthrough.upstream import Outgoing, UpstreamLink
from tests.api.conftest import add

SECRET = "backend-password-42"


async def test_the_api_stores_the_upstream_and_never_shows_its_password(
        app: StromApp, admin: httpx.AsyncClient) -> None:
    assert app.services is not None
    created = await add(admin, upstream={"url": "wss://csms.example/ocpp/cp-1",
                                         "password": SECRET})
    assert created["upstream"] == {"url": "wss://csms.example/ocpp/cp-1", "has_password": True,
                                   "subprotocol": "ocpp1.6", "client_cert": None,
                                   "client_key": None, "lightning": True}
    shown = await admin.get("/api/v1/charge-points/cp-1")
    assert SECRET not in shown.text
    # Switching lightning off without the password keeps it (same URL) …
    off = await admin.patch("/api/v1/charge-points/cp-1", json={"upstream": {
        "url": "wss://csms.example/ocpp/cp-1", "lightning": False}})
    assert off.status_code == 200 and off.json()["upstream"]["lightning"] is False
    stored = await app.services.charge_points.get("cp-1")
    assert stored is not None and stored.upstream is not None
    assert stored.upstream["password"] == SECRET
    # … but a password never follows to another host.
    moved = await admin.patch("/api/v1/charge-points/cp-1", json={"upstream": {
        "url": "wss://elsewhere.example/ocpp/cp-1"}})
    assert moved.json()["upstream"]["has_password"] is False
    for bad, word in (({"url": "https://csms.example/"}, "ws://"),
                      ({"url": "wss://user:pw@csms.example/"}, "password"),
                      ({"url": "wss://csms.example/", "subprotocol": "ocpp2.1"}, None),
                      ({"url": "ws://csms.example/", "client_cert": "/nope.pem",
                        "client_key": "/nope.key"}, "wss")):
        refused = await admin.patch("/api/v1/charge-points/cp-1", json={"upstream": bad})
        assert refused.status_code == 422, refused.text
        assert word is None or word in refused.text
    # A 2.0.1 charger keeps a 2.0.1 backend (strom relays, never translates).
    v201 = await admin.patch("/api/v1/charge-points/cp-1", json={"upstream": {
        "url": "wss://csms.example/ocpp/cp-1", "subprotocol": "ocpp2.0.1"}})
    assert v201.status_code == 200 and v201.json()["upstream"]["subprotocol"] == "ocpp2.0.1"
    removed = await admin.patch("/api/v1/charge-points/cp-1", json={"upstream": None})
    assert removed.json()["upstream"] is None


def test_the_cli_sets_and_removes_the_upstream(tmp_path: Path) -> None:
    env = {"STROM_DATA_DIR": str(tmp_path / "data"), "STROM_UPSTREAM_PASSWORD": SECRET}
    runner = CliRunner()
    added = runner.invoke(cli, ["cp", "add", "cp-u", "--lat", "1", "--lon", "2", "--upstream",
                                "ws://127.0.0.1:9999/ocpp/cp-u"], env=env)
    assert added.exit_code == 0, added.output
    shown = json.loads(runner.invoke(cli, ["cp", "show", "cp-u"], env=env).output)
    assert shown["upstream"]["url"] == "ws://127.0.0.1:9999/ocpp/cp-u"
    assert shown["upstream"]["has_password"] is True and SECRET not in json.dumps(shown)
    proxy = runner.invoke(cli, ["cp", "update", "cp-u", "--upstream",
                                "ws://127.0.0.1:9999/ocpp/cp-u", "--no-lightning",
                                "--upstream-ocpp", "ocpp2.0.1"],
                          env={"STROM_DATA_DIR": env["STROM_DATA_DIR"]})
    assert proxy.exit_code == 0 and "pure proxy" in proxy.output
    shown = json.loads(runner.invoke(cli, ["cp", "show", "cp-u"], env=env).output)
    assert shown["upstream"]["lightning"] is False and shown["upstream"]["has_password"]
    assert shown["upstream"]["subprotocol"] == "ocpp2.0.1"
    bad = runner.invoke(cli, ["cp", "update", "cp-u", "--upstream", "http://x/"], env=env)
    # A UserError: `strom` prints it as one line (strom/cli/__init__.py).
    assert isinstance(bad.exception, UserError) and "upstream url" in str(bad.exception)
    gone = runner.invoke(cli, ["cp", "update", "cp-u", "--upstream", ""], env=env)
    assert gone.exit_code == 0
    assert json.loads(runner.invoke(cli, ["cp", "show", "cp-u"], env=env).output)[
        "upstream"] is None


async def test_the_queue_is_bounded_and_sheds_meter_values_first() -> None:
    settings = PassthroughSettings(queue_max_messages=3, queue_max_bytes=2048,
                                   answer_timeout=0.5, reconnect_min_seconds=30)

    async def no_calls(*_: object) -> None:
        raise AssertionError("no backend, no calls")

    # A backend that is not there: every call is answered by strom and queued (or not).
    link = UpstreamLink("cp-q", UpstreamConfig("ws://127.0.0.1:1/ocpp/cp-q"), settings,
                        no_calls, outbound=None, max_message_bytes=65536)
    link.start()
    try:
        for n, action in enumerate(["StartTransaction", "MeterValues", "MeterValues",
                                    "Heartbeat", "StopTransaction", "StatusNotification"]):
            item = Outgoing(action, f"id-{n}", lambda: "[]", 100)
            assert await link.forward(item) is None  # strom answers
        # Three at most: the oldest MeterValues made room; Heartbeat is never queued.
        assert link.queued == 3 and link.dropped == 2
        big = Outgoing("StopTransaction", "big", lambda: "[]", 4096)
        assert await link.forward(big) is None
        assert link.dropped == 3  # larger than the byte bound: refused, the queue intact
        assert link.queued == 3
    finally:
        await link.close()
