"""kill -9 in the middle of a charging session, restart: nothing lost, nothing doubled.

Server, charger simulator and wallet calls all run as separate processes or over HTTP, as in
production: the simulator keeps charging while strom is down and delivers its queued
MeterValues and StopTransaction after the restart.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
import lnurl

from strom.lnurl.codec import lnurl_encode
from tests.doubles.edges import make_invoice
from tests.e2e.processes import free_port, start, stop, strom, wait_running

CP = "cp-k"


def session(url: str) -> dict:
    return httpx.get(url, headers={"Accept": "application/json"}, timeout=10).json()


def wait_session(url: str, check, seconds: float = 30) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while True:
        current = session(url)
        if check(current):
            return current
        assert time.monotonic() < deadline, current
        time.sleep(0.1)


def test_kill_9_while_charging_then_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    http_port, ocpp_port = free_port(), free_port()
    config = tmp_path / "strom.toml"
    config.write_text(f"""
[http]
port = {http_port}
[ocpp]
port = {ocpp_port}
[relay]
embedded = false
[sessions]
stop_timeout = 10.0
""")
    cfg = ("--config", str(config))
    assert strom("cp", "add", CP, "--lat", "1", "--lon", "2", *cfg, data_dir=data).returncode == 0
    log = tmp_path / "strom.log"
    server = start("run", *cfg, data_dir=data, log=log)
    charger = start("simulate", CP, "--url", f"ws://127.0.0.1:{ocpp_port}/ocpp",
                    "--meter-interval", "0.3", "--speed", "20", data_dir=data,
                    log=tmp_path / "sim.log")
    try:
        base = wait_running(data, server)
        token = (data / "admin.token").read_text().strip()
        wait_cp = lambda: json.loads(  # noqa: E731
            strom("cp", "show", CP, *cfg, data_dir=data).stdout)["status"]
        deadline = time.monotonic() + 30
        while wait_cp() != "Available":
            assert time.monotonic() < deadline
            time.sleep(0.2)

        pay = asyncio.run(lnurl.handle(lnurl_encode(f"{base}/lnurlp/{CP}")))
        action = asyncio.run(lnurl.execute_pay_request(pay, 200_000_000 // 4))
        paid = httpx.post(f"{base}/api/v1/dev/pay", json={"bolt11": str(action.pr)},
                          headers={"Authorization": f"Bearer {token}"})
        assert paid.json()["settled"]
        url = str(action.successAction.url)
        before = wait_session(url, lambda s: s["state"] == "charging" and s["energy_wh"] > 0)

        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        time.sleep(2)  # the charger goes on charging and queues its MeterValues
        server = start("run", *cfg, data_dir=data, log=log)
        wait_running(data, server)

        after = wait_session(url, lambda s: s["state"] == "charging"
                             and s["energy_wh"] > before["energy_wh"] + 1)
        assert after["paid_msat"] == before["paid_msat"]  # the payment was not counted twice

        request = asyncio.run(lnurl.handle(after["lnurlw"]))  # stop & refund
        assert isinstance(request, lnurl.LnurlWithdrawResponse), request
        stopped = session(url)
        assert stopped["state"] == "stopped"
        assert stopped["paid_msat"] == stopped["consumed_msat"] + stopped["refundable_msat"]
        invoice = make_invoice(int(request.maxWithdrawable))
        done = asyncio.run(lnurl.execute_withdraw(request, invoice))
        assert done.status == "OK"
        assert session(url)["state"] == "refunded"

        checked = strom("ledger", "check", "--json", *cfg, data_dir=data)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert stop(server) == 0
    finally:
        for proc in (server, charger):
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in log.read_text()
