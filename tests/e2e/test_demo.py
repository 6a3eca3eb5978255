"""`strom run` without a config: demo mode with a simulated `demo-1`, clean shutdown."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.processes import start, stop, strom, wait_running


def test_demo_charger_is_listed_available_from_a_second_terminal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "strom.log"
    ports = {"STROM_HTTP_PORT": "0", "STROM_OCPP_PORT": "0", "STROM_RELAY_PORT": "0"}
    server = start("run", data_dir=data, log=log, **ports)
    try:
        url = wait_running(data, server)
        status = None
        for _ in range(200):
            listed = strom("cp", "list", "--json", data_dir=data)
            assert listed.returncode == 0, listed.stderr
            status = {c["id"]: c["status"] for c in json.loads(listed.stdout)}.get("demo-1")
            if status == "Available":
                break
            time.sleep(0.1)
        assert status == "Available"
        health = httpx.get(url + "/healthz").json()
        assert health["checks"]["ocpp"]["connected"] == 1 and health["demo"] is True
        assert health["checks"]["nostr"]["identities"] == 1  # demo-1 is on nostr
        assert health["checks"]["relay"]["url"].startswith("ws://127.0.0.1:")
        page = httpx.get(url + "/cp/demo-1")
        assert page.status_code == 200 and "<svg" in page.text
        assert stop(server, signal.SIGTERM) == 0
    finally:
        if server.poll() is None:
            server.kill()
    output = log.read_text()
    assert "strom is running in demo mode" in output
    for line in ("web:", "ocpp:", "relay:"):
        assert line in output, output
    assert "strom stopped" in output
    assert "Traceback" not in output
